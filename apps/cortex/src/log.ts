// Cortex logs through the one Log interface both servers share (pino's logger satisfies it).
export { type Log, silentLog } from "@cortex/http-kit";
