// views/score.ts — the Score view: an NB201 cell editor, an NB101
// matrix/op editor, or a JSON box (graph, NLP, any request); the batch,
// batch size, weights and engine pickers fed from /v1/spaces and
// /v1/batches; POST /v1/score; the result card; every result goes to the
// history (Explore).
import { ApiError, call, type ScoreRequest, type ScoreResult, type Spaces } from "../api/client";
import { api, base, serverInfo } from "../app";
import { NB201_EDGES, drawNb101, drawNb201, nb101Kept } from "../dag";
import * as history from "../history";
import { eps, h, hideError, int, showError } from "../ui";

type Mode = "nb201" | "nb101" | "json";

const NB201_DEFAULT = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";

const JSON_EXAMPLES: Record<string, string> = {
  graph: JSON.stringify(
    {
      space: "graph",
      input: { channels: 3, height: 32, width: 32 },
      nodes: [
        { name: "c1", op: "conv2d", inputs: ["input"], out_channels: 16, kernel: 3, padding: 1, bias: false },
        { name: "b1", op: "batchnorm", inputs: ["c1"] },
        { name: "r1", op: "relu", inputs: ["b1"] },
        { name: "g", op: "global_avgpool", inputs: ["r1"] },
        { name: "fc", op: "linear", inputs: ["g"], out_features: 1 },
      ],
      output: "fc",
    },
    null,
    2,
  ),
  nlp: JSON.stringify(
    {
      space: "nlp",
      recipe: {
        f: { op: "linear", input: ["x", "h_prev_0"] },
        h_new_0: { op: "activation_tanh", input: ["f"] },
      },
      batch: "tokens",
    },
    null,
    2,
  ),
  nb201: JSON.stringify({ space: "nb201", arch: NB201_DEFAULT }, null, 2),
};

/** Splits an NB201 cell string into its 6 ops, or null. */
export function parseNb201(arch: string): string[] | null {
  const m = /^\|([^~|]+)~0\|\+\|([^~|]+)~0\|([^~|]+)~1\|\+\|([^~|]+)~0\|([^~|]+)~1\|([^~|]+)~2\|$/.exec(arch.trim());
  return m ? m.slice(1, 7) : null;
}

export function formatNb201(ops: string[]): string {
  return `|${ops[0]}~0|+|${ops[1]}~0|${ops[2]}~1|+|${ops[3]}~0|${ops[4]}~1|${ops[5]}~2|`;
}

/** The field an error names, narrowed to one matrix cell or op when the
 *  message says which (the API names `matrix`, its message `matrix[2][0]`). */
function narrowField(e: ApiError): string | undefined {
  if (!e.field) return undefined;
  const m = new RegExp(`${e.field.replace(/[[\].]/g, "\\$&")}((?:\\[\\d+\\])+)`).exec(e.message);
  return m ? e.field + m[1] : e.field;
}

const KNOWN = new Set(["id", "space", "hash", "canonical", "epsilon", "nan_reason", "params", "macs", "weights", "batch", "batch_hash", "batch_size", "engine", "cached", "elapsed_ms"]);

/** A field the card does not know (e.g. `encodings`): an object as one
 *  line per key, each value as compact JSON. */
function compact(v: unknown): HTMLElement {
  if (v && typeof v === "object" && !Array.isArray(v))
    return h("div", { class: "mono wrap" }, ...Object.entries(v).map(([k, x]) => h("div", {}, h("strong", {}, k), " ", typeof x === "string" ? x : JSON.stringify(x))));
  return h("code", { class: "wrap" }, JSON.stringify(v));
}

function resultCard(r: ScoreResult, roundTripMs: number): HTMLElement {
  const row = (k: string, v: Node | string, testid?: string) => [h("dt", {}, k), h("dd", testid ? { "data-testid": testid } : {}, v)];
  const eNode = h("span", { class: r.epsilon === null ? "nan" : "epsilon", "data-testid": "epsilon" }, eps(r.epsilon));
  const extra = Object.entries(r).filter(([k]) => !KNOWN.has(k));
  return h(
    "section",
    { class: "card result", "aria-live": "polite", "data-testid": "result" },
    h("h3", {}, "Result"),
    h("p", { class: "big" }, "epsilon = ", eNode, r.nan_reason ? h("span", { class: "nan-reason", "data-testid": "nan-reason" }, ` (${r.nan_reason})`) : ""),
    h(
      "dl",
      {},
      ...row("params", int(r.params), "params"),
      ...row("MACs", int(r.macs), "macs"),
      ...row("hash", h("code", {}, r.hash), "hash"),
      ...row("canonical", h("code", { class: "wrap" }, r.canonical)),
      ...row("batch", `${r.batch} (${r.batch_hash}), first ${r.batch_size}`),
      ...row("weights", r.weights.join(", ")),
      ...row("engine", r.engine),
      ...row("cached", r.cached ? "yes" : "no", "cached"),
      ...row("time", `${r.elapsed_ms.toFixed(1)} ms in the server, ${roundTripMs.toFixed(0)} ms round trip`),
      ...extra.flatMap(([k, v]) => row(k, compact(v), k)),
    ),
  );
}

export function renderScore(root: HTMLElement): void {
  let mode: Mode = "nb201";
  let nb201Ops = parseNb201(NB201_DEFAULT)!;
  let nbMatrix = [
    [0, 1, 1, 0],
    [0, 0, 0, 1],
    [0, 0, 0, 1],
    [0, 0, 0, 0],
  ];
  let nbOps = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"];
  let spaces: Spaces | null = null;

  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Request kind" });
  const editor = h("div", { class: "editor" });
  const opts = h("fieldset", { class: "opts" }, h("legend", {}, "Options (empty: the space's defaults)"));
  const defaultOpt = h("option", { value: "" }, "(the space's default)");
  const batchSel = h("select", { id: "opt-batch", "data-field": "batch" }, defaultOpt);
  // Datasets with a batch of their own (nb201: cifar10, cifar100): picking
  // one picks its batch.
  const datasetSel = h("select", { id: "opt-dataset", "aria-label": "dataset" }, h("option", { value: "" }, "(any)"));
  const datasetLabel = h("label", { hidden: true }, "dataset ", datasetSel);
  datasetSel.addEventListener("change", () => {
    if (datasetSel.value) batchSel.value = datasetSel.value;
  });
  const sizeIn = h("input", { id: "opt-batch-size", type: "number", min: 1, step: 1, placeholder: "all", "data-field": "batch_size", size: 6 });
  const w1 = h("input", { id: "opt-w1", inputmode: "decimal", size: 9, "data-field": "weights[0]" });
  const w2 = h("input", { id: "opt-w2", inputmode: "decimal", size: 9, "data-field": "weights[1]" });
  const engineSel = h("select", { id: "opt-engine", "data-field": "engine" }, h("option", { value: "" }, "(default)"));
  opts.append(
    datasetLabel,
    h("label", {}, "batch ", batchSel),
    h("label", {}, "batch size ", sizeIn),
    h("span", { "data-field": "weights", class: "weights" }, "weights ", h("label", {}, "w1 ", w1), h("label", {}, " w2 ", w2)),
    h("label", {}, "engine ", engineSel),
  );
  const scoreBtn = h("button", { type: "submit", class: "primary", id: "score-btn" }, "Score");
  const errBox = h("div", { class: "error", role: "alert", hidden: true, "data-testid": "error" });
  const out = h("div", { class: "out" });
  const form = h("form", { class: "score-form", "aria-label": "Score an architecture" }, tabs, editor, opts, h("p", {}, scoreBtn, h("span", { class: "hint" }, " Enter or Ctrl+Enter scores")), errBox);
  root.replaceChildren(h("h2", {}, "Score"), h("div", { class: "cols" }, form, out));

  const spaceOfMode = () => (mode === "json" ? jsonSpace() : mode);
  function jsonSpace(): string {
    try {
      return String(JSON.parse((editor.querySelector("textarea") as HTMLTextAreaElement | null)?.value ?? "{}").space ?? "");
    } catch {
      return "";
    }
  }

  /** Pickers follow the space: its weights as placeholders, its batch kind. */
  function refreshPickers(): void {
    if (!spaces) return;
    const sp = spaces.spaces.find((x) => x.name === spaceOfMode());
    w1.placeholder = sp ? String(sp.weights[0]) : "";
    w2.placeholder = sp ? String(sp.weights[1]) : "";
    defaultOpt.textContent = sp ? `(default: ${sp.default_batch})` : "(the space's default)";
    const ds = Object.entries(sp?.dataset_batches ?? {});
    datasetLabel.hidden = ds.length === 0;
    datasetSel.replaceChildren(h("option", { value: "" }, "(any)"), ...ds.map(([d, b]) => h("option", { value: b }, d)));
    const kind = sp?.batch_kind;
    for (const o of batchSel.options) if (o.value) o.hidden = !!kind && o.dataset.kind !== kind;
    if (batchSel.selectedOptions[0]?.hidden) batchSel.value = "";
  }

  serverInfo()
    .then(({ spaces: sps, batches }) => {
      spaces = sps;
      for (const b of batches.batches)
        batchSel.append(h("option", { value: b.name, "data-kind": b.kind }, `${b.name} (${b.kind}, ${b.size}, ${b.source})`));
      for (const e of sps.engines) engineSel.append(h("option", { value: e }, e));
      draw();
    })
    .catch((e) => showError(errBox, form, e));

  function tab(m: Mode, label: string) {
    const b = h("button", { type: "button", role: "tab", id: `tab-${m}`, "aria-selected": String(m === mode), onclick: () => ((mode = m), draw()) }, label);
    return b;
  }
  tabs.append(tab("nb201", "NB201 cell"), tab("nb101", "NB101 cell"), tab("json", "JSON (graph, NLP, any)"));

  function draw(): void {
    for (const b of tabs.querySelectorAll("button")) b.setAttribute("aria-selected", String(b.id === `tab-${mode}`));
    hideError(errBox, form);
    if (mode === "nb201") drawNb201Editor();
    else if (mode === "nb101") drawNb101Editor();
    else drawJsonEditor();
    refreshPickers();
  }

  function nb201OpNames(): string[] {
    return spaces?.spaces.find((x) => x.name === "nb201")?.ops ?? ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"];
  }

  function drawNb201Editor(): void {
    const archIn = h("input", { id: "nb201-arch", class: "mono wide", value: formatNb201(nb201Ops), "data-field": "arch", "aria-label": "NB201 cell string" });
    const pic = h("div", { class: "dag-box" }, drawNb201(nb201Ops));
    const grid = h("div", { class: "edge-grid" });
    NB201_EDGES.forEach(([i, j], k) => {
      const sel = h("select", { id: `nb201-edge-${k}`, "aria-label": `op on edge ${i} to ${j}` });
      for (const op of nb201OpNames()) sel.append(h("option", { value: op, selected: op === nb201Ops[k] }, op));
      sel.addEventListener("change", () => {
        nb201Ops[k] = sel.value;
        archIn.value = formatNb201(nb201Ops);
        pic.replaceChildren(drawNb201(nb201Ops));
      });
      grid.append(h("label", {}, `${i} → ${j} `, sel));
    });
    archIn.addEventListener("input", () => {
      const ops = parseNb201(archIn.value);
      if (!ops) return;
      nb201Ops = ops;
      NB201_EDGES.forEach((_, k) => ((editor.querySelector(`#nb201-edge-${k}`) as HTMLSelectElement).value = ops[k]));
      pic.replaceChildren(drawNb201(nb201Ops));
    });
    const random = h("button", { type: "button", onclick: () => {
      const names = nb201OpNames();
      nb201Ops = nb201Ops.map(() => names[Math.floor(Math.random() * names.length)]);
      drawNb201Editor();
    } }, "Random cell");
    editor.replaceChildren(pic, grid, h("label", { class: "block" }, "cell ", archIn), random);
  }

  function drawNb101Editor(): void {
    const n = nbMatrix.length;
    const opNames = spaces?.spaces.find((x) => x.name === "nb101")?.ops ?? ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"];
    const kept = nb101Kept(nbMatrix);
    const sizeSel = h("select", { id: "nb101-n", "aria-label": "vertices" });
    for (let k = 2; k <= 7; k++) sizeSel.append(h("option", { value: k, selected: k === n }, String(k)));
    sizeSel.addEventListener("change", () => {
      const m = Number(sizeSel.value);
      const old = nbMatrix, oldOps = nbOps;
      nbMatrix = Array.from({ length: m }, (_, i) => Array.from({ length: m }, (_, j) => (i < old.length - 1 && j < old.length - 1 ? old[i][j] : 0)));
      for (let i = 0; i < m - 1; i++) if (old[i]?.[old.length - 1]) nbMatrix[i][m - 1] = 1;
      nbOps = Array.from({ length: m }, (_, i) => (i === 0 ? "input" : i === m - 1 ? "output" : oldOps[i] && i < oldOps.length - 1 ? oldOps[i] : opNames[0]));
      drawNb101Editor();
    });
    const table = h("table", { class: "matrix", "data-field": "matrix", "aria-label": "adjacency matrix: row = from, column = to" });
    const head = h("tr", {}, h("th", {}, "from \\ to"));
    for (let j = 0; j < n; j++) head.append(h("th", { scope: "col" }, String(j)));
    table.append(head);
    for (let i = 0; i < n; i++) {
      const tr = h("tr", {}, h("th", { scope: "row" }, String(i)));
      for (let j = 0; j < n; j++) {
        const cb = h("input", { type: "checkbox", id: `m-${i}-${j}`, checked: nbMatrix[i][j] === 1, disabled: i === j, "aria-label": `edge ${i} to ${j}` });
        cb.addEventListener("change", () => {
          nbMatrix[i][j] = cb.checked ? 1 : 0;
          drawNb101Editor();
          (editor.querySelector(`#m-${i}-${j}`) as HTMLInputElement).focus();
        });
        tr.append(h("td", { "data-field": `matrix[${i}][${j}]`, class: j < i ? "lower" : "" }, cb));
      }
      table.append(tr);
    }
    const opsBox = h("div", { class: "ops", "data-field": "ops" });
    for (let i = 0; i < n; i++) {
      if (i === 0 || i === n - 1) {
        opsBox.append(h("span", { "data-field": `ops[${i}]`, class: "fixed" }, `${i}: ${nbOps[i]}`));
        continue;
      }
      const sel = h("select", { id: `nb101-op-${i}`, "aria-label": `op of vertex ${i}` });
      for (const op of opNames) sel.append(h("option", { value: op, selected: op === nbOps[i] }, op));
      sel.addEventListener("change", () => {
        nbOps[i] = sel.value;
        drawNb101Editor();
      });
      opsBox.append(h("label", { "data-field": `ops[${i}]` }, `${i}: `, sel));
    }
    const pruned = kept.map((k, i) => (k ? -1 : i)).filter((i) => i >= 0);
    const edges = nbMatrix.flat().filter((v, idx) => v && idx % n > Math.floor(idx / n)).length;
    editor.replaceChildren(
      h("div", { class: "dag-box" }, drawNb101(nbMatrix, nbOps)),
      h("p", { class: "hint", "data-testid": "pruning" }, `${edges} edges; ` + (pruned.length ? `pruned (not on an input-output path): vertex ${pruned.join(", ")}` : "nothing pruned")),
      h("label", {}, "vertices ", sizeSel),
      h("div", { class: "nb101" }, table, opsBox),
    );
  }

  function drawJsonEditor(): void {
    const ta = h("textarea", { id: "json-req", rows: 18, cols: 70, class: "mono", "data-field": "json", spellcheck: "false", "aria-label": "score request JSON" });
    ta.value = JSON_EXAMPLES.graph;
    ta.addEventListener("input", refreshPickers);
    const ex = h("select", { "aria-label": "example" }, ...Object.keys(JSON_EXAMPLES).map((k) => h("option", { value: k }, `${k} example`)));
    ex.addEventListener("change", () => {
      ta.value = JSON_EXAMPLES[ex.value];
      refreshPickers();
    });
    editor.replaceChildren(h("p", {}, ex, h("span", { class: "hint" }, " the options below fill fields the JSON leaves out")), ta);
  }

  /** The options the user set (the rest stay the space's defaults). */
  function options(): Partial<ScoreRequest> {
    const o: Partial<ScoreRequest> = {};
    if (batchSel.value) o.batch = batchSel.value;
    if (sizeIn.value !== "") o.batch_size = Number(sizeIn.value);
    if (w1.value !== "" || w2.value !== "") o.weights = [Number(w1.value || w1.placeholder), Number(w2.value || w2.placeholder)];
    if (engineSel.value) o.engine = engineSel.value as ScoreRequest["engine"];
    return o;
  }

  /** The request body as text: the JSON box is sent as typed (merged with
   *  the options when it parses), so the API reports its own line/column. */
  function bodyText(): string {
    if (mode === "nb201") return JSON.stringify({ space: "nb201", arch: (editor.querySelector("#nb201-arch") as HTMLInputElement).value, ...options() });
    if (mode === "nb101") return JSON.stringify({ space: "nb101", matrix: nbMatrix, ops: nbOps, ...options() });
    const text = (editor.querySelector("textarea") as HTMLTextAreaElement).value;
    try {
      const j = JSON.parse(text);
      if (j && typeof j === "object" && !Array.isArray(j)) return JSON.stringify({ ...options(), ...j });
    } catch {
      /* sent as typed */
    }
    return text;
  }

  async function submit(): Promise<void> {
    hideError(errBox, form);
    scoreBtn.disabled = true;
    out.setAttribute("aria-busy", "true");
    const text = bodyText();
    const t0 = performance.now();
    try {
      const r = await call(base(), () => api().POST("/v1/score", { body: {} as ScoreRequest, bodySerializer: () => text }));
      history.add(r);
      out.replaceChildren(resultCard(r, performance.now() - t0));
    } catch (e) {
      if (mode === "json" && e instanceof ApiError) {
        // One box holds every field: show which, and put the caret there.
        const ta = editor.querySelector("textarea") as HTMLTextAreaElement;
        showError(errBox, form, e, () => "json");
        if (e.line) {
          const lines = ta.value.split("\n");
          const pos = lines.slice(0, e.line - 1).reduce((a, l) => a + l.length + 1, 0) + (e.column ?? 1) - 1;
          ta.setSelectionRange(pos, pos + 1);
        }
      } else showError(errBox, form, e, narrowField);
      // A result left next to the error would read as this request's.
      out.replaceChildren();
    } finally {
      scoreBtn.disabled = false;
      out.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submit();
  });
  form.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      void submit();
    }
  });
  draw();
}
