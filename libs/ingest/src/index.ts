export { headerFields, headerValue, removeHeaderFields, rfc5322Date, splitHeader, type SplitMessage } from './headers.ts';
export { CONTENT_REFUSAL_CODES, ContentRefusedError, HeaderTooLargeError, contentRefusalReply, type ContentRefusalCode } from './refusal.ts';
export { SMTP_MAX_LINE_LENGTH, guardContent, type ContentGuardOptions, type LineEndingHandling } from './content-guard.ts';
export { ingestMessage, receptionOf, type IngestDeps, type IngestGuard, type IngestRequest, type IngestResult } from './ingest.ts';
export { submitDsn, type DsnOutcome, type DsnRequest } from './dsn.ts';
