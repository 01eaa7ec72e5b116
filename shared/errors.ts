/**
 * Stable error codes for everything that crosses a process boundary. Clients switch on `code`;
 * `message` is for people. Never renumber or reuse a code.
 */
export const ERROR_CODES = [
  'BAD_JSON', // not parseable JSON or not text
  'BAD_MESSAGE', // JSON that fails the schema (see `issues`)
  'UNKNOWN_TYPE', // a message type this endpoint does not handle
  'TOO_LARGE', // message over LIMITS.maxClientMessageBytes
  'RATE_LIMITED', // too many messages, logins or orders
  'NOT_AUTHENTICATED', // needs a customer session or terminal auth first
  'BAD_CREDENTIALS', // wrong e-mail or password
  'EMAIL_TAKEN',
  'SESSION_EXPIRED', // token unknown, revoked or expired
  'BAD_SIGNATURE', // terminal or peer failed its challenge
  'PAIRING_CODE_INVALID', // unknown, used or expired code
  'TERMINAL_LIMIT', // customer already has LIMITS.terminalsPerCustomer terminals
  'NOT_FOUND', // no such item/terminal/order *for this caller* (never reveals others' ids)
  'BAD_PERIOD', // rental period outside bounds
  'BAD_SCHEDULE', // schedule in the past or too far ahead
  'WRONG_ROLE', // a terminal sent a customer message or vice versa
  'FORBIDDEN', // signed in, but this needs an admin account
  'STORAGE_FULL', // the server's disk is full: nothing was stored, try again later
  'INTERNAL', // our bug; logged server side with a correlation id
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class RentalError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly issues?: string[],
  ) {
    super(message);
    this.name = 'RentalError';
  }
}
