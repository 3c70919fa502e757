export { EmsError } from './errors.ts';
export { splitEmsScript } from './lexer.ts';
export { emsTrackingRequest, runEmsLine, type EmsOutput, type EmsResult, type EmsTrackingRequest } from './run.ts';
