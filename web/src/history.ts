// history.ts — what this browser scored (Score view), kept in localStorage
// for the Explore view: newest last, at most MAX entries (the oldest go).
import type { ScoreResult } from "./api/client";
import { csvCell } from "./ui";

const KEY = "epsinas.history";
const MAX = 2000;

export interface Entry {
  t: string; // ISO time scored
  space: string;
  canonical: string;
  hash: string;
  epsilon: number | null;
  nan_reason: string | null;
  params: number;
  macs: number;
  batch: string;
  batch_size: number;
  weights: number[];
  engine: string;
}

export function entries(): Entry[] {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) ?? "[]");
    return Array.isArray(v) ? (v as Entry[]) : [];
  } catch {
    return [];
  }
}

export function add(r: ScoreResult): void {
  const all = entries();
  all.push({
    t: new Date().toISOString(),
    space: r.space,
    canonical: r.canonical,
    hash: r.hash,
    epsilon: r.epsilon,
    nan_reason: r.nan_reason,
    params: r.params,
    macs: r.macs,
    batch: r.batch,
    batch_size: r.batch_size,
    weights: r.weights,
    engine: r.engine,
  });
  while (all.length > MAX) all.shift();
  try {
    localStorage.setItem(KEY, JSON.stringify(all));
  } catch {
    /* storage full: keep the newest half */
    localStorage.setItem(KEY, JSON.stringify(all.slice(all.length >> 1)));
  }
}

export function clear(): void {
  localStorage.removeItem(KEY);
}

export const COLUMNS = ["t", "space", "canonical", "epsilon", "nan_reason", "params", "macs", "hash", "batch", "batch_size", "engine"] as const;

export function toCsv(list: Entry[]): string {
  const lines = [COLUMNS.join(",")];
  for (const e of list) lines.push(COLUMNS.map((c) => csvCell(c === "epsilon" && e.epsilon === null ? "nan" : e[c])).join(","));
  return lines.join("\n") + "\n";
}
