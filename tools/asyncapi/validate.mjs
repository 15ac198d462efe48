// Validate an AsyncAPI document with the official parser; print diagnostics as JSON lines.
// Exit 0 when the document has no error-severity diagnostic, 1 otherwise, 2 on usage errors.
import { readFileSync } from 'node:fs';
import { Parser } from '@asyncapi/parser';

const file = process.argv[2];
if (!file) {
  console.error('usage: node validate.mjs <asyncapi.yaml>');
  process.exit(2);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(readFileSync(file, 'utf8'), { source: file });
let errors = 0;
for (const d of diagnostics) {
  // severity: 0 error, 1 warning, 2 information, 3 hint (Spectral's DiagnosticSeverity)
  if (d.severity === 0) errors += 1;
  console.log(JSON.stringify({ severity: d.severity, code: d.code, message: d.message, path: d.path }));
}
console.log(JSON.stringify({ valid: errors === 0 && document !== undefined, errors, version: document?.version() }));
process.exit(errors === 0 && document !== undefined ? 0 : 1);
