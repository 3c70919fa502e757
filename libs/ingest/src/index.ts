export { HeaderTooLargeError, headerFields, headerValue, removeHeaderFields, rfc5322Date, splitHeader, type SplitMessage } from './headers.ts';
export { ingestMessage, type IngestDeps, type IngestRequest, type IngestResult } from './ingest.ts';
export { submitDsn, type DsnOutcome, type DsnRequest } from './dsn.ts';
