// views/explore.ts — the Explore view: everything this browser scored
// (history.ts), as a scatter of epsilon against params (log axis), a
// sortable table and a CSV download. NaN scores are listed, not plotted.
import { Chart } from "../charts";
import * as history from "../history";
import { download, eps, h, int } from "../ui";

type Key = "t" | "space" | "epsilon" | "params" | "macs" | "canonical";
const COLS: { key: Key; label: string; num?: boolean }[] = [
  { key: "t", label: "scored" },
  { key: "space", label: "space" },
  { key: "epsilon", label: "epsilon", num: true },
  { key: "params", label: "params", num: true },
  { key: "macs", label: "MACs", num: true },
  { key: "canonical", label: "architecture" },
];

// One colour per space, distinguishable for common colour-vision deficiencies.
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

let chart: Chart | null = null;

export function renderExplore(root: HTMLElement): void {
  let sortKey: Key = "t";
  let desc = true;
  const list = history.entries();
  const finite = list.filter((e) => e.epsilon !== null);
  const canvas = h("canvas", { id: "scatter", role: "img", "aria-label": "scatter of epsilon against params" });
  const table = h("table", { class: "data", "data-testid": "history-table" });
  const summary = h("p", { "data-testid": "history-count" }, `${list.length} scored in this browser, ${list.length - finite.length} NaN (not plotted).`);
  const csvBtn = h("button", { type: "button", onclick: () => download("epsinas-history.csv", history.toCsv(list)) }, "Download CSV");
  const clearBtn = h("button", { type: "button", onclick: () => {
    if (confirm("Forget every score kept in this browser?")) {
      history.clear();
      renderExplore(root);
    }
  } }, "Clear history");
  root.replaceChildren(
    h("h2", {}, "Explore"),
    summary,
    h("p", {}, csvBtn, " ", clearBtn),
    list.length ? h("div", { class: "chart-box" }, canvas) : h("p", { class: "hint" }, "Nothing yet: score a few cells in the Score view."),
    table,
  );

  chart?.destroy();
  chart = null;
  if (list.length) {
    const bySpace = new Map<string, { x: number; y: number; label: string }[]>();
    for (const e of finite) {
      if (!bySpace.has(e.space)) bySpace.set(e.space, []);
      bySpace.get(e.space)!.push({ x: Math.max(1, e.params), y: e.epsilon as number, label: e.canonical });
    }
    chart = new Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [...bySpace].map(([space, data], i) => ({
          label: space,
          data,
          pointRadius: 5,
          pointHoverRadius: 7,
          backgroundColor: PALETTE[i % PALETTE.length] + "b0",
          borderColor: PALETTE[i % PALETTE.length],
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        scales: {
          x: { type: "logarithmic", title: { display: true, text: "params (log)" } },
          y: { title: { display: true, text: "epsilon" } },
        },
        plugins: {
          tooltip: {
            callbacks: {
              label: (c) => {
                const p = c.raw as { x: number; y: number; label: string };
                return `${p.label.slice(0, 60)}  eps=${p.y}  params=${int(p.x)}`;
              },
            },
          },
        },
      },
    });
  }

  function drawTable(): void {
    const rows = [...list].sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      // NaN sorts last whichever way.
      if (x === null) return 1;
      if (y === null) return -1;
      const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return desc ? -c : c;
    });
    const head = h("tr", {});
    for (const c of COLS) {
      const active = c.key === sortKey;
      const btn = h("button", { type: "button", class: "sort", onclick: () => {
        if (sortKey === c.key) desc = !desc;
        else (sortKey = c.key), (desc = !!c.num || c.key === "t");
        drawTable();
        (table.querySelector(`button[data-key="${c.key}"]`) as HTMLButtonElement | null)?.focus();
      }, "data-key": c.key }, c.label, active ? (desc ? " ▼" : " ▲") : "");
      head.append(h("th", { scope: "col", "aria-sort": active ? (desc ? "descending" : "ascending") : "none" }, btn));
    }
    const body = rows.slice(0, 1000).map((e) =>
      h(
        "tr",
        {},
        h("td", {}, new Date(e.t).toLocaleString()),
        h("td", {}, e.space),
        h("td", { class: "num" }, e.epsilon === null ? h("span", { class: "nan", title: e.nan_reason ?? "" }, "NaN") : eps(e.epsilon)),
        h("td", { class: "num" }, int(e.params)),
        h("td", { class: "num" }, int(e.macs)),
        h("td", { class: "mono wrap" }, e.canonical),
      ),
    );
    table.replaceChildren(h("thead", {}, head), h("tbody", {}, ...body));
  }
  drawTable();
}
