import type { Target } from "./client.js";
import { runLoad } from "./proxy-overhead.js";
import { API_KEY, startStack } from "./stack.js";
import { type BenchResult, print, round, rssMiB, table, writeReport } from "./support.js";

export interface MemoryOptions {
  readonly requests: number;
  readonly samples: number;
  readonly connections: number;
}
export const MEMORY_FULL: MemoryOptions = { requests: 50_000, samples: 10, connections: 16 };
export const MEMORY_SMOKE: MemoryOptions = { requests: 200, samples: 2, connections: 4 };

/** Cortex and neuron RSS idle and along N proxied requests, to show whether it levels off. */
const signed = (n: number) => `${n >= 0 ? "+" : ""}${n}`;

export const runMemory = async (options: MemoryOptions): Promise<BenchResult> => {
  const stack = await startStack([{ id: "zero", behaviour: {} }]);
  try {
    const target: Target = {
      name: "cortex",
      url: `${stack.cortex.url}/v1/chat/completions`,
      headers: { authorization: `Bearer ${API_KEY}` },
      model: "zero",
    };
    const body = JSON.stringify({
      model: "zero",
      messages: [{ role: "user", content: "Hello, how are you today?" }],
      max_tokens: 16,
    });
    // The first request loads the model; "idle" is measured after it.
    const first = await fetch(target.url, {
      method: "POST",
      headers: { ...target.headers, "content-type": "application/json" },
      body,
    });
    await first.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const rows: { requests: number; cortex_mib: number; neuron_mib: number; errors: number }[] = [
      {
        requests: 0,
        cortex_mib: rssMiB(stack.cortex.pid),
        neuron_mib: rssMiB(stack.neuron.pid),
        errors: 0,
      },
    ];
    const per = Math.ceil(options.requests / options.samples);
    let sent = 0;
    let errors = 0;
    while (sent < options.requests) {
      const r = await runLoad(target, body, options.connections, 600, undefined, per);
      sent += r.requests;
      errors += r.errors + r.non2xx;
      rows.push({
        requests: sent,
        cortex_mib: rssMiB(stack.cortex.pid),
        neuron_mib: rssMiB(stack.neuron.pid),
        errors,
      });
      if (r.requests === 0) break;
    }
    const idle = rows[0];
    const last = rows.at(-1);
    const half = rows[Math.floor(rows.length / 2)];
    const report = {
      benchmark: "memory",
      date: new Date().toISOString(),
      options,
      samples: rows,
      idle: { cortex_mib: idle?.cortex_mib, neuron_mib: idle?.neuron_mib },
      after: {
        cortex_mib: last?.cortex_mib,
        neuron_mib: last?.neuron_mib,
        requests: last?.requests,
      },
      second_half_growth_mib: {
        cortex: round((last?.cortex_mib ?? 0) - (half?.cortex_mib ?? 0), 1),
        neuron: round((last?.neuron_mib ?? 0) - (half?.neuron_mib ?? 0), 1),
      },
    };
    writeReport("memory", report);
    const t = table(
      ["requests", "cortex RSS MiB", "neuron RSS MiB", "errors"],
      rows.map((r) => [r.requests, r.cortex_mib, r.neuron_mib, r.errors]),
    );
    print("Memory (RSS along proxied requests)", t.text);
    const growth = report.second_half_growth_mib;
    const firstHalf = {
      cortex: (half?.cortex_mib ?? 0) - (idle?.cortex_mib ?? 0),
      neuron: (half?.neuron_mib ?? 0) - (idle?.neuron_mib ?? 0),
    };
    // Levels off: the second half grows by no more than 10 MiB and less than the first half did.
    const levels = (a: number, b: number) => a <= 10 || a < b;
    return {
      name: "memory",
      title: "Memory",
      markdown: `RSS (VmRSS) of the cortex and neuron processes, idle after one load and after each batch of proxied non-streaming requests (${options.connections} keep-alive connections):\n\n${t.markdown}`,
      budgets: [
        {
          budget: `RSS levels off over ${last?.requests ?? 0} proxied requests (second-half growth ≤ 10 MiB or below first-half growth)`,
          measured: `cortex ${idle?.cortex_mib} → ${last?.cortex_mib} MiB (${signed(growth.cortex)} in 2nd half), neuron ${idle?.neuron_mib} → ${last?.neuron_mib} MiB (${signed(growth.neuron)} in 2nd half)`,
          pass: levels(growth.cortex, firstHalf.cortex) && levels(growth.neuron, firstHalf.neuron),
        },
      ],
    };
  } finally {
    await stack.stop();
  }
};
