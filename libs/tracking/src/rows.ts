/**
 * Message tracking rows as Exchange's Get-MessageTrackingLog writes them (docs/exchange-behaviour.md §10):
 * the property names and their order, the event ids and sources, and the field names of
 * the MSGTRK log files. Transit fills only what its events know; the rest stays empty.
 */

export const TRACKING_EVENT_IDS = [
  'RECEIVE',
  'SUBMIT',
  'RESOLVE',
  'EXPAND',
  'REDIRECT',
  'SEND',
  'DELIVER',
  'DEFER',
  'FAIL',
  'DSN',
  'DROP',
  'POISONMESSAGE',
  'RESUBMIT',
  'DUPLICATEDELIVER',
  'BADMAIL',
] as const;
export type TrackingEventId = (typeof TRACKING_EVENT_IDS)[number];

export const TRACKING_SOURCES = ['SMTP', 'STOREDRIVER', 'ROUTING', 'DSN', 'QUEUE', 'REDUNDANCY', 'SAFETYNET', 'PICKUP', 'ADMIN', 'POISONMESSAGE'] as const;
export type TrackingSource = (typeof TRACKING_SOURCES)[number];

/** One row: Get-MessageTrackingLog's object. Multi-valued properties are arrays (`;`-joined in files). */
export type TrackingRow = {
  /** ISO 8601, UTC, milliseconds. */
  Timestamp: string;
  ClientIp?: string;
  ClientHostname?: string;
  ServerIp?: string;
  ServerHostname?: string;
  SourceContext?: string;
  ConnectorId?: string;
  Source: TrackingSource;
  EventId: TrackingEventId;
  InternalMessageId?: number;
  MessageId?: string;
  /** Transit's message id (the `mail.evt.<id>` subject): unique in the organisation, as Exchange's NetworkMessageId. */
  NetworkMessageId: string;
  Recipients: string[];
  RecipientStatus: string[];
  TotalBytes?: number;
  RecipientCount: number;
  RelatedRecipientAddress?: string;
  Reference?: string[];
  MessageSubject?: string;
  Sender?: string;
  ReturnPath?: string;
  Directionality?: string;
  MessageInfo?: string;
};

/** Get-MessageTrackingLog's property order (JSON, CSV and Format-List follow it). */
export const TRACKING_FIELDS = [
  'Timestamp',
  'ClientIp',
  'ClientHostname',
  'ServerIp',
  'ServerHostname',
  'SourceContext',
  'ConnectorId',
  'Source',
  'EventId',
  'InternalMessageId',
  'MessageId',
  'NetworkMessageId',
  'Recipients',
  'RecipientStatus',
  'TotalBytes',
  'RecipientCount',
  'RelatedRecipientAddress',
  'Reference',
  'MessageSubject',
  'Sender',
  'ReturnPath',
  'Directionality',
  'MessageInfo',
] as const satisfies ReadonlyArray<keyof TrackingRow>;

/** The MSGTRK file's #Fields, in Exchange's order, and the row property each one is (none: always empty in Transit). */
export const MSGTRK_FIELDS: ReadonlyArray<readonly [string, keyof TrackingRow | undefined]> = [
  ['date-time', 'Timestamp'],
  ['client-ip', 'ClientIp'],
  ['client-hostname', 'ClientHostname'],
  ['server-ip', 'ServerIp'],
  ['server-hostname', 'ServerHostname'],
  ['source-context', 'SourceContext'],
  ['connector-id', 'ConnectorId'],
  ['source', 'Source'],
  ['event-id', 'EventId'],
  ['internal-message-id', 'InternalMessageId'],
  ['message-id', 'MessageId'],
  ['network-message-id', 'NetworkMessageId'],
  ['recipient-address', 'Recipients'],
  ['recipient-status', 'RecipientStatus'],
  ['total-bytes', 'TotalBytes'],
  ['recipient-count', 'RecipientCount'],
  ['related-recipient-address', 'RelatedRecipientAddress'],
  ['reference', 'Reference'],
  ['message-subject', 'MessageSubject'],
  ['sender-address', 'Sender'],
  ['return-path', 'ReturnPath'],
  ['message-info', 'MessageInfo'],
  ['directionality', 'Directionality'],
  ['tenant-id', undefined],
  ['original-client-ip', undefined],
  ['original-server-ip', undefined],
  ['custom-data', undefined],
  ['transport-traffic-type', undefined],
  ['log-id', undefined],
  ['schema-version', undefined],
];
