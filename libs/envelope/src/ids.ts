import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'; // Crockford base32

/**
 * A message id: 10 characters of time (ms) then 16 of randomness, Crockford base32.
 * Sorts by time, safe in NATS subjects, file names and Message-ID local parts.
 */
export function newMessageId(now: number = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  const random = randomBytes(16);
  let tail = '';
  for (const b of random) tail += ALPHABET[b % 32]!;
  return time + tail;
}
