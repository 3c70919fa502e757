/**
 * Why a message's content was refused, as a value the SMTP layer can answer from: every
 * refusal of the content guard (and of splitHeader) is a ContentRefusedError with a code,
 * and contentRefusalReply maps the code to its one reply in the policy table. The bytes
 * refused are never stored, so the sender keeps the message: a 5xx, not a bounce.
 */
import { REPLIES, type Reply, type ReplyName } from '@transit/policy';

export const CONTENT_REFUSAL_CODES = ['BARE_LINE_FEED', 'BARE_CR', 'NUL', 'LINE_TOO_LONG', 'TOO_BIG', 'HEADER_TOO_BIG'] as const;
export type ContentRefusalCode = (typeof CONTENT_REFUSAL_CODES)[number];

export class ContentRefusedError extends Error {
  readonly code: ContentRefusalCode;
  /** Octet offset in the content as received where the fault is (for the log), when it has one. */
  readonly offset: number | undefined;
  constructor(code: ContentRefusalCode, message: string, offset?: number) {
    super(offset === undefined ? message : `${message} at octet ${offset}`);
    this.name = 'ContentRefusedError';
    this.code = code;
    this.offset = offset;
  }
}

/** MaxHeaderSize: its own class (callers matched it before the guard existed), and one of the content refusals. */
export class HeaderTooLargeError extends ContentRefusedError {
  declare readonly code: 'HEADER_TOO_BIG';
  constructor(limit: number) {
    super('HEADER_TOO_BIG', `header block exceeds ${limit} octets`);
    this.name = 'HeaderTooLargeError';
  }
}

const REPLY_OF = {
  BARE_LINE_FEED: 'contentBareLineFeed',
  BARE_CR: 'contentBareCarriageReturn',
  NUL: 'contentNul',
  LINE_TOO_LONG: 'contentLineTooLong',
  TOO_BIG: 'messageTooBig',
  HEADER_TOO_BIG: 'headerTooBig',
} as const satisfies Record<ContentRefusalCode, ReplyName>;

/** The reply to a refused message: 554 5.6.0 for the content faults, 552 5.3.4 for the two sizes. */
export function contentRefusalReply(code: ContentRefusalCode): Reply {
  return REPLIES[REPLY_OF[code]];
}
