// Copy the canonical module (src/sheetstream/web/sheetstream.js of the Python package, which the server serves
// at /static/sheetstream.js) into this package; `npm pack` runs it first ("prepack"), and a test checks the copy.
import { copyFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const canonical = fileURLToPath(new URL("../../../src/sheetstream/web/sheetstream.js", import.meta.url));
const copy = fileURLToPath(new URL("../src/sheetstream.js", import.meta.url));

if (existsSync(canonical)) {
  copyFileSync(canonical, copy);
  console.log(`copied ${canonical} -> ${copy}`);
} else {
  console.log("no canonical module next to this package: keeping src/sheetstream.js as it is");
}
