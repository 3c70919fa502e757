export { ProtocolLog, type ProtocolLogKind, type ProtocolLogOptions, type ProtocolLogSession } from './protocol-log.ts';
