// applyOps follows the server's core/apply.py: ops in order, `set` pads, `resize` truncates, trim at the end.
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { test } from "node:test";

import { ApplyError, applyOps, backoffDelay, normalizeRows } from "../src/sheetstream.js";

const tabs = () => [
  { id: 0, title: "People", rows: [["name", "score"], ["ada", 1], ["bob", 2]] },
  { id: 7, title: "Log", rows: [["entry"]] },
];

test("set changes one cell and pads a ragged row", () => {
  const out = applyOps(tabs(), [
    { op: "set", tab: 0, row: 1, col: 1, a1: "B2", old: 1, new: 5 },
    { op: "set", tab: 7, row: 0, col: 3, a1: "D1", old: "", new: "x" },
  ]);
  assert.deepEqual(out[0].rows[1], ["ada", 5]);
  assert.deepEqual(out[1].rows[0], ["entry", "", "", "x"]);
});

test("the input is not modified and untouched tabs are shared", () => {
  const before = tabs();
  const snapshot = JSON.stringify(before);
  const out = applyOps(before, [{ op: "insert_rows", tab: 0, at: 1, rows: [["cy", 3]] }]);
  assert.equal(JSON.stringify(before), snapshot);
  assert.equal(out[1], before[1]);
  assert.deepEqual(out[0].rows.map((r) => r[0]), ["name", "cy", "ada", "bob"]);
});

test("ops apply in order, each to the rows the previous one left", () => {
  const out = applyOps(tabs(), [
    { op: "delete_rows", tab: 0, at: 1, count: 1 },
    { op: "set", tab: 0, row: 1, col: 1, a1: "B2", old: 2, new: 20 },
    { op: "insert_rows", tab: 0, at: 2, rows: [["dee", 4]] },
  ]);
  assert.deepEqual(out[0].rows, [["name", "score"], ["bob", 20], ["dee", 4]]);
});

test("a cleared row keeps its place until the ops are done; trailing empties are trimmed at the end", () => {
  const out = applyOps(tabs(), [
    { op: "set", tab: 0, row: 2, col: 0, a1: "A3", old: "bob", new: "" },
    { op: "set", tab: 0, row: 2, col: 1, a1: "B3", old: 2, new: "" },
    { op: "set", tab: 0, row: 1, col: 1, a1: "B2", old: 1, new: "" },
  ]);
  assert.deepEqual(out[0].rows, [["name", "score"], ["ada"]]);
});

test("resize truncates rows and cells", () => {
  const out = applyOps(tabs(), [{ op: "resize", tab: 0, rows: 2, cols: 1 }]);
  assert.deepEqual(out[0].rows, [["name"], ["ada"]]);
});

test("tab ops: add, rename, move, remove", () => {
  const out = applyOps(tabs(), [
    { op: "add_tab", tab: 3, title: "New", index: 1, rows: [["a", ""]] },
    { op: "rename_tab", tab: 7, old: "Log", new: "History" },
    { op: "move_tab", tab: 7, index: 0 },
    { op: "remove_tab", tab: 0 },
  ]);
  assert.deepEqual(out.map((t) => [t.id, t.title]), [[7, "History"], [3, "New"]]);
  assert.deepEqual(out[1].rows, [["a"]]);
});

test("cells compare as the server compares them: 1 == 1.0 == true", () => {
  const out = applyOps([{ id: 0, title: "T", rows: [[true]] }], [
    { op: "set", tab: 0, row: 0, col: 0, a1: "A1", old: 1, new: "yes" },
  ]);
  assert.deepEqual(out[0].rows, [["yes"]]);
});

test("an op that does not fit throws ApplyError", () => {
  const bad = [
    { op: "set", tab: 0, row: 1, col: 1, a1: "B2", old: 99, new: 5 },
    { op: "set", tab: 0, row: 9, col: 0, a1: "A10", old: "", new: 5 },
    { op: "insert_rows", tab: 0, at: 9, rows: [] },
    { op: "delete_rows", tab: 0, at: 2, count: 5 },
    { op: "rename_tab", tab: 7, old: "Nope", new: "x" },
    { op: "remove_tab", tab: 42 },
    { op: "add_tab", tab: 7, title: "dup", index: 0, rows: [] },
    { op: "move_tab", tab: 7, index: 5 },
    { op: "resize", tab: 0, rows: -1, cols: 0 },
    { op: "explode", tab: 0 },
  ];
  for (const op of bad) assert.throws(() => applyOps(tabs(), [op]), ApplyError, JSON.stringify(op));
});

test("normalizeRows trims trailing empty cells and rows, and reads null as empty", () => {
  assert.deepEqual(normalizeRows([["a", "", null], [null, "b"], ["", ""], []]), [["a"], ["", "b"]]);
});

test("backoff grows exponentially up to the ceiling, with jitter in [ceiling/2, ceiling]", () => {
  const low = { initialMs: 100, maxMs: 1000, random: () => 0 };
  const high = { ...low, random: () => 1 };
  assert.deepEqual([1, 2, 3, 4, 9].map((n) => backoffDelay(n, low)), [100, 200, 400, 500, 500]);
  assert.deepEqual([1, 2, 3, 4, 9].map((n) => backoffDelay(n, high)), [200, 400, 800, 1000, 1000]);
});

test("the package's module is the copy of the one the server serves (npm run sync)", (t) => {
  const canonical = new URL("../../../src/sheetstream/web/sheetstream.js", import.meta.url);
  if (!existsSync(canonical)) {
    t.skip("not inside the sheetstream repository");
    return;
  }
  const copy = new URL("../src/sheetstream.js", import.meta.url);
  assert.equal(readFileSync(copy, "utf8"), readFileSync(canonical, "utf8"),
    "clients/js/src/sheetstream.js differs from src/sheetstream/web/sheetstream.js: run `npm run sync`");
});
