export { EmsError } from './errors.ts';
export { splitEmsScript } from './lexer.ts';
export {
  emsDkimRequest,
  emsQueueRequest,
  emsTrackingRequest,
  runEmsLine,
  type EmsDkimRequest,
  type EmsOutput,
  type EmsQueueRequest,
  type EmsResult,
  type EmsTrackingRequest,
} from './run.ts';
