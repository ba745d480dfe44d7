import { NodeName } from "@cortex/protocol";
import express, { type Router } from "express";
import { CortexError } from "../errors.js";
import type { NodeDrains } from "../nodes/drains.js";

/** The node named in the path, or a 400: it is quoted in messages and looked up, nothing else. */
export const nodeParam = (value: string | undefined): string => {
  const parsed = NodeName.safeParse(value);
  if (!parsed.success)
    throw new CortexError(
      "invalid_request_error",
      "the node name must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit",
      { param: "name" },
    );
  return parsed.data;
};

/**
 * Taking a node out for maintenance and back (admin token, checked by the router this is mounted
 * on): `POST /api/nodes/{name}/drain` answers at once with `draining` (or the drain under way),
 * the node becomes `drained` once its models are unloaded; `POST /api/nodes/{name}/resume` ends
 * it. Both idempotent; 404 for a node not in the fleet. Any body is ignored.
 */
export const nodeRoutes = (drains: Pick<NodeDrains, "drain" | "resume">): Router => {
  const router = express.Router();
  router.post("/api/nodes/:name/drain", (req, res) => {
    res.json(drains.drain(nodeParam(req.params.name)));
  });
  router.post("/api/nodes/:name/resume", (req, res) => {
    res.json(drains.resume(nodeParam(req.params.name)));
  });
  return router;
};
