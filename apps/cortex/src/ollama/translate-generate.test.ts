import { describe, expect, it } from "vitest";
import { generatePlan } from "./translate-generate.js";

const same = (name: string) => name;

describe("generatePlan", () => {
  it("asks /v1/chat/completions with the system prompt and the prompt as messages", () => {
    expect(
      generatePlan(
        {
          model: "m",
          system: "you are terse",
          prompt: "why is the sky blue?",
          options: { seed: 1, top_k: 20 },
        },
        same,
      ),
    ).toEqual({
      kind: "infer",
      model: "m",
      path: "/v1/chat/completions",
      stream: true,
      ignored: [],
      body: {
        model: "m",
        stream: true,
        stream_options: { include_usage: true },
        seed: 1,
        top_k: 20,
        messages: [
          { role: "system", content: "you are terse" },
          { role: "user", content: "why is the sky blue?" },
        ],
      },
    });
  });

  it("asks /v1/completions with the prompt as it is when raw", () => {
    expect(
      generatePlan(
        {
          model: "m",
          prompt: "<s>[INST] hi [/INST]",
          raw: true,
          stream: false,
          system: "unused",
          format: "json",
        },
        same,
      ),
    ).toEqual({
      kind: "infer",
      model: "m",
      path: "/v1/completions",
      stream: false,
      ignored: ["system"],
      body: {
        model: "m",
        stream: false,
        prompt: "<s>[INST] hi [/INST]",
        response_format: { type: "json_object" },
      },
    });
  });

  it.each([
    [{ model: "m" }, "load"],
    [{ model: "m", prompt: "", system: "s" }, "load"],
    [{ model: "m", prompt: "", keep_alive: 0 }, "unload"],
  ])("with an empty prompt %j plans a %s", (body, kind) => {
    expect(generatePlan(body, same).kind).toBe(kind);
  });

  it.each([
    [{ model: "m", prompt: "x", images: ["aGk="] }, /images are not supported/],
    [{ model: "m", prompt: "x", suffix: "end" }, /suffix/],
    [{ model: "m", prompt: "x", template: "{{ .Prompt }}" }, /template is not supported/],
    [{ model: "m", prompt: "x", context: [1, 2, 3] }, /context is not supported/],
    [{ model: "m", prompt: 3 }, /prompt/],
    [{ model: "m", prompt: "x", raw: "yes" }, /raw/],
    [{ model: "m", prompt: "x", options: { num_predict: "ten" } }, /num_predict/],
  ])("refuses %j", (body, message) => {
    expect(() => generatePlan(body, same)).toThrow(message);
  });

  it("takes an empty suffix, template or context as absent", () => {
    expect(
      generatePlan({ model: "m", prompt: "x", suffix: "", template: "", context: [] }, same).kind,
    ).toBe("infer");
  });
});
