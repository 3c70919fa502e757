export { EmsError } from './errors.ts';
export { splitEmsScript } from './lexer.ts';
export { runEmsLine, type EmsOutput, type EmsResult } from './run.ts';
