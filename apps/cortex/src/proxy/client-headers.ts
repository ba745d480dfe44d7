// What of the client's request head goes on to the neuron is http-kit's `forwardedHeaders`, the
// same filter the neuron applies on its way to the harness: everything that describes the call,
// nothing that belongs to the hop (hop-by-hop headers, `host`, `content-length`), no cookie and
// no credential. Cortex then adds the neuron's token and its own `x-request-id` (forward.ts).
export { forwardedHeaders } from "@cortex/http-kit";
