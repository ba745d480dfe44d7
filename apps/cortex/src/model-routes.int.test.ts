import { request as httpRequest, type OutgoingHttpHeaders } from "node:http";
import { openAIProblems } from "@cortex/testkit/openai";
import { toFile } from "openai";
import { describe, expect, it } from "vitest";
import { CATALOGUE, client, gpu, KEY, resident, useCortexFleet } from "./cortex.fixtures.js";
import type { Cortex } from "./cortex.js";

// The model-routed requests beyond JSON chat, in-process against a fake neuron that echoes what
// it got (`fake.echo`): multipart uploads routed by their form's model and forwarded byte for
// byte (an alias rewritten in place), versionless `/v/*` and llama-server's own paths, a GET
// naming its model in the query, and the catalogue's per-model request filters.

const STRICT = {
  id: "strict",
  aliases: ["strict-alias"],
  harness: "llamacpp",
  source: "strict.gguf",
  vram_mb: 1000,
  filters: {
    strip_params: ["top_k"],
    set_params: { temperature: 0.2, stop: ["</s>"] },
  },
};

const { fleet, neuron } = useCortexFleet({ models: [...CATALOGUE.models, STRICT] });

const oneNode = () =>
  fleet([
    {
      name: "a",
      devices: [gpu(0, 24_000)],
      models: [resident("chat-small"), resident("strict")],
    },
  ]);

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One request with exactly these headers and bytes. */
const raw = (
  c: Cortex,
  method: string,
  path: string,
  headers: OutgoingHttpHeaders,
  body?: Buffer | string,
): Promise<RawAnswer> =>
  new Promise((resolve, reject) => {
    const url = new URL(c.url);
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        method,
        headers: { authorization: `Bearer ${KEY}`, ...headers },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });

interface Echo {
  readonly object: "fake.echo";
  readonly model: string;
  readonly method: string;
  readonly url: string;
  readonly content_type: string | null;
  readonly body_base64: string;
}

const echoOf = (answer: RawAnswer): Echo => {
  expect(answer.status, answer.body).toBe(200);
  const echo = JSON.parse(answer.body) as Echo;
  expect(echo.object).toBe("fake.echo");
  return echo;
};

const bodyOf = (echo: Echo): Buffer => Buffer.from(echo.body_base64, "base64");

/** Bytes no boundary can be found in: a stand-in for an audio file. */
const audio = (size: number): Buffer => {
  const bytes = Buffer.alloc(size);
  for (let i = 0; i < size; i += 1) bytes[i] = (i * 7) % 251;
  return bytes;
};

const BOUNDARY = "----cortex-test-boundary";

/** A transcription form as a client sends it: the file first, then the model and the rest. */
const transcriptionForm = (model: string, file: Buffer, extra = ""): Buffer =>
  Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`,
    ),
    file,
    Buffer.from(
      `\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${model}\r\n` +
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="language"\r\n\r\nen\r\n${extra}--${BOUNDARY}--\r\n`,
    ),
  ]);

const FORM_TYPE = `multipart/form-data; boundary=${BOUNDARY}`;

describe("multipart uploads", () => {
  it("routes a transcription by its form's model, rewriting an alias and nothing else", async () => {
    const c = await oneNode();
    const file = audio(2 * 2 ** 20);
    const answer = await raw(
      c,
      "POST",
      "/v1/audio/transcriptions?x=1",
      { "content-type": FORM_TYPE },
      transcriptionForm("small", file),
    );
    const echo = echoOf(answer);
    expect(echo).toMatchObject({
      model: "chat-small",
      method: "POST",
      url: "/v1/audio/transcriptions?x=1",
      content_type: FORM_TYPE,
    });
    expect(bodyOf(echo).equals(transcriptionForm("chat-small", file))).toBe(true);
    expect(answer.headers["x-cortex-node"]).toBe("a");
    expect(neuron("a").headers?.["content-length"]).toBe(
      String(transcriptionForm("chat-small", file).length),
    );
  });

  it("forwards a form naming the model by its id as sent, and leaves filters out of it", async () => {
    const c = await oneNode();
    const form = transcriptionForm("strict", audio(1000), "");
    const echo = echoOf(
      await raw(c, "POST", "/v1/audio/translations", { "content-type": FORM_TYPE }, form),
    );
    expect(echo.model).toBe("strict");
    expect(bodyOf(echo).equals(form)).toBe(true);
  });

  it("works with the official client's uploads", async () => {
    const c = await oneNode();
    const file = audio(50_000);
    const answer = (await client(c).audio.transcriptions.create({
      file: await toFile(file, "speech.wav", { type: "audio/wav" }),
      model: "org/chat-small",
    })) as unknown as Echo;
    expect(answer).toMatchObject({ object: "fake.echo", model: "chat-small" });
    expect(answer.content_type).toMatch(/^multipart\/form-data; boundary=/);
    const body = bodyOf(answer);
    expect(body.includes(file)).toBe(true);
    expect(body.includes(Buffer.from("org/chat-small"))).toBe(false);
  });

  it.each([
    [
      "no model field",
      FORM_TYPE,
      Buffer.from(
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\nx\r\n--${BOUNDARY}--`,
      ),
      "missing_model",
    ],
    [
      "two model fields",
      FORM_TYPE,
      transcriptionForm(
        "small",
        audio(10),
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nstrict\r\n`,
      ),
      "invalid_request_error",
    ],
    [
      "no boundary",
      "multipart/form-data",
      transcriptionForm("small", audio(10)),
      "invalid_request_error",
    ],
    [
      "an unterminated form",
      FORM_TYPE,
      transcriptionForm("small", audio(10)).subarray(0, 200),
      "invalid_request_error",
    ],
  ])(
    "refuses a body with %s, in the OpenAI envelope, reaching no neuron",
    async (_what, type, body, code) => {
      const c = await oneNode();
      const answer = await raw(
        c,
        "POST",
        "/v1/audio/transcriptions",
        { "content-type": type },
        body,
      );
      expect(answer.status).toBe(400);
      const json = JSON.parse(answer.body);
      expect(openAIProblems("ErrorResponse", json)).toEqual([]);
      expect(json.error.code).toBe(code);
      expect(neuron("a").requests.size).toBe(0);
    },
  );
});

describe("more model-routed paths", () => {
  it("forwards /v/<route> as /v1/<route>, with the query string", async () => {
    const c = await oneNode();
    const answer = await raw(
      c,
      "POST",
      "/v/chat/completions?api-version=1",
      { "content-type": "application/json" },
      JSON.stringify({ model: "small", messages: [{ role: "user", content: "hi" }] }),
    );
    expect(answer.status).toBe(200);
    expect(openAIProblems("CreateChatCompletionResponse", JSON.parse(answer.body))).toEqual([]);
    expect(neuron("a").lastPath).toBe("/v1/chat/completions?api-version=1");
  });

  it.each([
    "/rerank",
    "/reranking",
    "/infill",
    "/completion",
    "/v1/rerank",
    "/v1/messages",
    "/v/responses",
  ])("routes POST %s by the body's model", async (path) => {
    const c = await oneNode();
    const echo = echoOf(
      await raw(
        c,
        "POST",
        path,
        { "content-type": "application/json" },
        '{"model":"small","query":"q"}',
      ),
    );
    expect(echo.model).toBe("chat-small");
    expect(echo.url).toBe(path.replace(/^\/v\//, "/v1/"));
    expect(bodyOf(echo).toString()).toBe('{"model":"chat-small","query":"q"}');
  });

  it("routes GET /v1/audio/voices by its model query parameter, rewriting an alias", async () => {
    const c = await oneNode();
    const echo = echoOf(await raw(c, "GET", "/v1/audio/voices?model=org%2Fchat-small&lang=en", {}));
    expect(echo).toMatchObject({
      model: "chat-small",
      method: "GET",
      url: "/v1/audio/voices?model=chat-small&lang=en",
      content_type: null,
    });
    expect(bodyOf(echo).length).toBe(0);
    const versionless = echoOf(await raw(c, "GET", "/v/audio/voices?model=strict", {}));
    expect(versionless.url).toBe("/v1/audio/voices?model=strict");
  });

  it.each([
    ["GET", "/v1/audio/voices", 400, "missing_model"],
    ["GET", "/v1/audio/voices?model=a&model=b", 400, "invalid_request_error"],
    ["POST", "/v/unknown", 404, "not_found"],
    ["POST", "/v/../models/load", 404, "not_found"],
    ["POST", "/v1/%2e%2e/models/load", 400, "invalid_request_error"],
    ["POST", "/rerank/../models/load", 404, "not_found"],
  ])("answers %s %s with %i %s, reaching no neuron", async (method, path, status, code) => {
    const c = await oneNode();
    const answer = await raw(
      c,
      method,
      path,
      { "content-type": "application/json" },
      method === "GET" ? undefined : '{"model":"small"}',
    );
    expect(answer.status).toBe(status);
    const json = JSON.parse(answer.body);
    expect(openAIProblems("ErrorResponse", json)).toEqual([]);
    expect(json.error.code).toBe(code);
    expect(neuron("a").requests.size).toBe(0);
    expect(neuron("a").lastPath).toBeNull();
  });
});

describe("per-model request filters", () => {
  it("strips and sets the catalogue's members for the model an alias names", async () => {
    const c = await oneNode();
    const echo = echoOf(
      await raw(
        c,
        "POST",
        "/v1/responses",
        { "content-type": "application/json" },
        '{"model":"strict-alias","input":"hi","top_k":40,"temperature":1.5,"seed":12345678901234567890}',
      ),
    );
    expect(echo.model).toBe("strict");
    expect(bodyOf(echo).toString()).toBe(
      '{"model":"strict","input":"hi","seed":12345678901234567890,"temperature":0.2,"stop":["</s>"]}',
    );
  });

  it("leaves a model without filters untouched, byte for byte", async () => {
    const c = await oneNode();
    const body = '{ "model" : "chat-small", "top_k" : 40 }';
    const echo = echoOf(
      await raw(c, "POST", "/v1/responses", { "content-type": "application/json" }, body),
    );
    expect(bodyOf(echo).toString()).toBe(body);
  });

  it("applies them to chat completions, which still answer in OpenAI's shape", async () => {
    const c = await oneNode();
    const chat = await client(c).chat.completions.create({
      model: "strict",
      messages: [{ role: "user", content: "hi" }],
      temperature: 1.9,
    });
    expect(openAIProblems("CreateChatCompletionResponse", chat)).toEqual([]);
    // The client's body, `{"model":…,"messages":…,"temperature":1.9}`, with its temperature
    // replaced and a stop added: only its length shows in the fake neuron's chat answer.
    const sent =
      '{"model":"strict","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"stop":["</s>"]}';
    expect(neuron("a").headers?.["content-length"]).toBe(String(Buffer.byteLength(sent)));
  });
});
