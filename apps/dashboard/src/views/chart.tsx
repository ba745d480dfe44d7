import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

// A small uPlot line chart that follows its container's width and the colour scheme. uPlot
// draws on a canvas, so the theme's colours are read from the CSS variables when it is built.

export interface Line {
  readonly label: string;
  readonly values: readonly (number | null)[];
  readonly color: string;
  readonly width?: number;
  readonly dash?: readonly number[];
  /** "y" (left axis, default) or "y2" (right axis, whole numbers). */
  readonly scale?: "y" | "y2";
  /** Dots at every value: for series with gaps, where a lone value draws no line. */
  readonly points?: boolean;
  readonly bars?: boolean;
}

const usePrefersDark = (): boolean => {
  const query = "(prefers-color-scheme: dark)";
  const [dark, setDark] = useState(() => window.matchMedia(query).matches);
  useEffect(() => {
    const media = window.matchMedia(query);
    const onChange = () => setDark(media.matches);
    media.addEventListener("change", onChange);
    return () => media.removeEventListener("change", onChange);
  }, []);
  return dark;
};

const clock = (seconds: number): string => {
  const at = new Date(seconds * 1000);
  return `${String(at.getHours()).padStart(2, "0")}:${String(at.getMinutes()).padStart(2, "0")}`;
};

const cssVar = (name: string): string =>
  getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";

export const Chart = ({
  title,
  x,
  lines,
  format,
  format2,
  height = 170,
}: {
  title: string;
  x: readonly number[];
  lines: readonly Line[];
  format: (value: number) => string;
  format2?: (value: number) => string;
  height?: number;
}) => {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const dark = usePrefersDark();
  const shape = JSON.stringify(lines.map((line) => [line.label, line.color, line.scale]));
  const data = [x as number[], ...lines.map((line) => line.values as (number | null)[])];

  // Rebuilt when the series or the theme change; otherwise only the data is replaced.
  // (`shape` and `dark` stand for how the lines look; the formatters never change behaviour.)
  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const axisColor = cssVar("--muted");
    const gridColor = cssVar("--grid");
    const axis = (scale: string, side: 1 | 3, fmt: (v: number) => string): uPlot.Axis => ({
      scale,
      side,
      stroke: axisColor,
      grid: { stroke: gridColor, width: 1, show: side === 3 },
      ticks: { stroke: gridColor, width: 1 },
      values: (_u, values) => values.map((v) => (v === null ? "" : fmt(v))),
      size: 64,
      ...(scale === "y2" ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] } : {}),
    });
    const hasY2 = lines.some((line) => line.scale === "y2");
    const instance = new uPlot(
      {
        width: Math.max(200, element.clientWidth),
        height,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: true },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
          y2: { range: (_u, _min, max) => [0, Math.max(1, Math.ceil(max))] },
        },
        axes: [
          {
            stroke: axisColor,
            grid: { stroke: gridColor, width: 1 },
            ticks: { stroke: gridColor },
            space: 70,
            values: (_u, values) => values.map((v) => (v === null ? "" : clock(v))),
          },
          axis("y", 3, format),
          ...(hasY2 ? [axis("y2", 1, format2 ?? format)] : []),
        ],
        series: [
          {},
          ...lines.map(
            (line): uPlot.Series => ({
              label: line.label,
              stroke: line.color,
              width: line.width ?? 1.5,
              scale: line.scale ?? "y",
              spanGaps: false,
              points: line.points ? { show: true, size: 5, fill: line.color } : { show: false },
              ...(line.dash ? { dash: [...line.dash] } : {}),
              ...(line.bars
                ? {
                    fill: `${line.color}66`,
                    paths: uPlot.paths.bars?.({ size: [0.6, 24] }),
                  }
                : {}),
              value: (_u, v) =>
                v === null ? "—" : (line.scale === "y2" ? (format2 ?? format) : format)(v),
            }),
          ),
        ],
      },
      data as uPlot.AlignedData,
      element,
    );
    plot.current = instance;
    const resize = new ResizeObserver(() => {
      instance.setSize({ width: Math.max(200, element.clientWidth), height });
    });
    resize.observe(element);
    return () => {
      resize.disconnect();
      instance.destroy();
      plot.current = null;
    };
  }, [shape, dark, height]);

  useEffect(() => {
    plot.current?.setData(data as uPlot.AlignedData);
  });

  return (
    <figure class="card chart" aria-label={title} data-testid="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} />
    </figure>
  );
};
