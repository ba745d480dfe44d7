import { main } from "./fake-harness.js";

void main(process.argv.slice(2));
