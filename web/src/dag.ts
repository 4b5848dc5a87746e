// dag.ts — the cells drawn as DAGs in SVG: the NB201 cell (4 nodes, an op on
// each of its 6 edges) and the NB101 cell (2-7 vertices, ops on vertices,
// with what NAS-Bench-101 prunes: vertices not on an input-to-output path).
// Left to right by node index; an edge that skips nodes bends away from the
// straight line so that every edge and its label stay visible.
import { s } from "./ui";

export const NB201_EDGES: ReadonlyArray<readonly [number, number]> = [
  [0, 1], [0, 2], [1, 2], [0, 3], [1, 3], [2, 3],
];

const OP_COLOR: Record<string, string> = {
  none: "#9aa0a6",
  skip_connect: "#2e7d32",
  nor_conv_1x1: "#1565c0",
  nor_conv_3x3: "#6a1b9a",
  avg_pool_3x3: "#e65100",
  "conv3x3-bn-relu": "#6a1b9a",
  "conv1x1-bn-relu": "#1565c0",
  maxpool3x3: "#e65100",
};

const SHORT: Record<string, string> = {
  none: "none",
  skip_connect: "skip",
  nor_conv_1x1: "conv1x1",
  nor_conv_3x3: "conv3x3",
  avg_pool_3x3: "avgpool",
  "conv3x3-bn-relu": "3x3",
  "conv1x1-bn-relu": "1x1",
  maxpool3x3: "pool",
  input: "in",
  output: "out",
};

export function shortOp(op: string): string {
  return SHORT[op] ?? op;
}

let uid = 0;

function frame(w: number, h: number, label: string): { svg: SVGSVGElement; arrow: string } {
  const svg = s("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img", "aria-label": label, class: "dag" });
  const id = `arrow${++uid}`;
  const defs = s("defs");
  const m = s("marker", { id, viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  m.append(s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#555" }));
  defs.append(m);
  svg.append(defs);
  return { svg, arrow: id };
}

interface EdgeStyle {
  color: string;
  dashed?: boolean;
  faded?: boolean;
  label?: string;
}

/** A quadratic edge from (x0,y) to (x1,y) bent by off, ending r short of the node. */
function edge(svg: SVGSVGElement, arrow: string, x0: number, x1: number, y: number, off: number, r: number, st: EdgeStyle): void {
  const cx = (x0 + x1) / 2, cy = y + off;
  // Shorten both ends by r along the curve's end tangents.
  const a0 = Math.atan2(cy - y, cx - x0), a1 = Math.atan2(y - cy, x1 - cx);
  const sx = x0 + r * Math.cos(a0), sy = y + r * Math.sin(a0);
  const ex = x1 - r * Math.cos(a1), ey = y - r * Math.sin(a1);
  const g = s("g", { class: "edge" + (st.faded ? " faded" : "") });
  g.append(
    s("path", {
      d: `M${sx},${sy} Q${cx},${cy} ${ex},${ey}`,
      fill: "none",
      stroke: st.color,
      "stroke-width": 2.2,
      "stroke-dasharray": st.dashed ? "5 4" : "none",
      "marker-end": `url(#${arrow})`,
    }),
  );
  if (st.label) {
    const mx = 0.25 * x0 + 0.5 * cx + 0.25 * x1, my = y + off / 2;
    const w = st.label.length * 6.6 + 8;
    g.append(s("rect", { x: mx - w / 2, y: my - 9, width: w, height: 16, rx: 3, fill: "#fff", stroke: st.color, "stroke-width": 1 }));
    g.append(s("text", { x: mx, y: my + 3, "text-anchor": "middle", fill: st.color, class: "edge-label" }, st.label));
  }
  svg.append(g);
}

function node(svg: SVGSVGElement, x: number, y: number, r: number, text: string, cls = ""): void {
  const g = s("g", { class: "node " + cls });
  g.append(s("circle", { cx: x, cy: y, r }));
  g.append(s("text", { x, y: y + 4, "text-anchor": "middle" }, text));
  svg.append(g);
}

/** The NB201 cell: ops[k] is the op of NB201_EDGES[k]. */
export function drawNb201(ops: string[]): SVGSVGElement {
  const W = 460, H = 220, Y = 118, R = 17;
  const xs = [40, 166, 294, 420];
  const { svg, arrow } = frame(W, H, "NB201 cell: " + NB201_EDGES.map(([i, j], k) => `${i}->${j} ${ops[k]}`).join(", "));
  NB201_EDGES.forEach(([i, j], k) => {
    const d = j - i;
    const off = d === 1 ? 0 : d === 2 ? (i === 0 ? -104 : 104) : -196;
    const op = ops[k] ?? "none";
    edge(svg, arrow, xs[i], xs[j], Y, off, R, { color: OP_COLOR[op] ?? "#333", dashed: op === "none", label: shortOp(op) });
  });
  xs.forEach((x, i) => node(svg, x, Y, R, String(i), i === 0 ? "io" : i === 3 ? "io" : ""));
  return svg;
}

/** Vertices NAS-Bench-101 keeps: reachable from the input and reaching the
 *  output through edges above the diagonal. */
export function nb101Kept(matrix: number[][]): boolean[] {
  const n = matrix.length;
  const fwd = new Array<boolean>(n).fill(false), back = new Array<boolean>(n).fill(false);
  fwd[0] = true;
  for (let j = 1; j < n; j++) for (let i = 0; i < j; i++) if (fwd[i] && matrix[i][j]) fwd[j] = true;
  back[n - 1] = true;
  for (let i = n - 2; i >= 0; i--) for (let j = i + 1; j < n; j++) if (back[j] && matrix[i][j]) back[i] = true;
  return fwd.map((f, i) => f && back[i]);
}

/** The NB101 cell; pruned vertices and edges faded, edges below the
 *  diagonal (which the API refuses) in red. */
export function drawNb101(matrix: number[][], ops: string[]): SVGSVGElement {
  const n = matrix.length;
  const step = 74, R = 18;
  const bend = (d: number) => Math.min(110, 20 + 26 * d);
  // Tall enough for the widest bend above and below (a curve peaks at half its bend).
  const Y = bend(n - 1) / 2 + 34, H = 2 * Y;
  const W = 40 + step * (n - 1) + 40;
  const kept = nb101Kept(matrix);
  const { svg, arrow } = frame(W, H, `NB101 cell with ${n} vertices`);
  const x = (i: number) => 40 + step * i;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (i === j || !matrix[i][j]) continue;
      const lo = Math.min(i, j), hi = Math.max(i, j), d = hi - lo;
      const off = d === 1 ? 0 : (lo % 2 === 0 ? -1 : 1) * bend(d);
      if (j < i) {
        edge(svg, arrow, x(i), x(j), Y, -off, R, { color: "#c62828", dashed: true });
        continue;
      }
      const live = kept[i] && kept[j];
      edge(svg, arrow, x(i), x(j), Y, off, R, { color: live ? "#37474f" : "#9aa0a6", faded: !live, dashed: !live });
    }
  for (let i = 0; i < n; i++) node(svg, x(i), Y, R, shortOp(ops[i] ?? "?"), (kept[i] ? "" : "pruned") + (i === 0 || i === n - 1 ? " io" : ""));
  return svg;
}
