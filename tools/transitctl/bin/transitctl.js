#!/usr/bin/env node
/* global process */
// Transit's sources are TypeScript run by Node 24's type stripping. Under `npx transitctl`
// or an npm script, `node` is the project's Node 24 (node_modules/.bin comes first on PATH).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(`transitctl needs Node 24 or later (this is ${process.version}); run it as \`npx transitctl\` inside the repository.\n`);
  process.exitCode = 1;
} else {
  await import('../src/main.ts');
}
