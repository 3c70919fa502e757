// smtp-server exports its connection class but ships no types for it; the adapter
// checks at run time that the methods it wraps exist.
declare module 'smtp-server/lib/smtp-connection.js' {
  export const SMTPConnection: unknown;
}
