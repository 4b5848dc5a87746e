// ui.ts — the few DOM helpers the views share: element building, the error
// box (the API's message, with the offending field highlighted) and number
// formatting. Plain DOM: the views are small enough not to need a framework.
import { ApiError } from "./api/client";

type Attrs = Record<string, string | number | boolean | EventListener | undefined>;
type Child = Node | string | number | null | undefined | false;

/** h("button", {class: "x", onclick: f}, "text"): one element. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === "number" ? String(c) : c);
  return el;
}

export const SVG_NS = "http://www.w3.org/2000/svg";
export function s<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Integer with thousands separators; "" for a missing value. */
export function int(n: number | null | undefined): string {
  return n === null || n === undefined ? "" : Math.round(n).toLocaleString("en-US");
}

/** Epsilon as the service prints it (the shortest text that round-trips). */
export function eps(v: number | null | undefined): string {
  return v === null || v === undefined || Number.isNaN(v) ? "NaN" : String(v);
}

/** Removes the highlight of an earlier error under root. */
export function clearInvalid(root: ParentNode): void {
  for (const el of root.querySelectorAll(".invalid")) {
    el.classList.remove("invalid");
    el.removeAttribute("aria-invalid");
  }
}

/** Marks the element whose data-field is the longest prefix of field
 *  ("items[3].arch" -> items[3].arch, items[3], items); returns it. */
export function highlightField(root: ParentNode, field: string | undefined): HTMLElement | null {
  if (!field) return null;
  let f = field;
  for (;;) {
    const el = root.querySelector<HTMLElement>(`[data-field="${CSS.escape(f)}"]`);
    if (el) {
      el.classList.add("invalid");
      el.setAttribute("aria-invalid", "true");
      return el;
    }
    const cut = Math.max(f.lastIndexOf("["), f.lastIndexOf("."));
    if (cut <= 0) return null;
    f = f.slice(0, cut);
  }
}

/** Shows err in box (role=alert) and highlights its field under root. */
export function showError(box: HTMLElement, root: ParentNode, err: unknown, fieldOf?: (e: ApiError) => string | undefined): void {
  clearInvalid(root);
  box.replaceChildren();
  box.hidden = false;
  if (!(err instanceof ApiError)) {
    box.append(h("strong", {}, "Error: "), String(err));
    return;
  }
  const field = fieldOf?.(err) ?? err.field;
  box.append(
    h("strong", {}, err.status ? `${err.status} ${err.code}` : err.code),
    ": ",
    h("span", { class: "err-msg", "data-testid": "error-message" }, err.message),
  );
  if (err.field) box.append(" ", h("span", { class: "err-field" }, `field: ${err.field}`));
  if (err.line) box.append(" ", h("span", { class: "err-field" }, `line ${err.line}, column ${err.column ?? 1}`));
  const el = highlightField(root, field);
  if (el) el.focus({ preventScroll: false });
}

export function hideError(box: HTMLElement, root: ParentNode): void {
  clearInvalid(root);
  box.hidden = true;
  box.replaceChildren();
}

/** Saves text as a file named name (no server round trip). */
export function download(name: string, text: string | Blob, type = "text/csv"): void {
  const blob = typeof text === "string" ? new Blob([text], { type }) : text;
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function csvCell(v: unknown): string {
  const t = v === null || v === undefined ? "" : String(v);
  return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
}
