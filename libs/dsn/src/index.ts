export { buildDsn, byReason, dsnStatus, wantsNotification, type DsnInput, type DsnRecipient, type DsnKind } from './dsn.ts';
