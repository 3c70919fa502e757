export { EmsError } from './errors.ts';
export { splitEmsScript } from './lexer.ts';
export { emsQueueRequest, emsTrackingRequest, runEmsLine, type EmsOutput, type EmsQueueRequest, type EmsResult, type EmsTrackingRequest } from './run.ts';
