/** Every bound the system enforces, in one place, so docs and tests quote the same numbers. */
export const LIMITS = {
  /** Largest WebSocket message a client may send (control JSON only; terminals never upload media). */
  maxClientMessageBytes: 64 * 1024,
  /** Plaintext bytes per encrypted content chunk. */
  chunkSize: 64 * 1024,
  /** Chunks in flight to one terminal before we wait for its progress report (back-pressure). */
  deliveryWindowChunks: 512,
  /** Pause sending when the socket buffers more than this (the kernel's own buffer is behind it). */
  maxSocketBufferedBytes: 1024 * 1024,
  /**
   * Received and not yet written, across a terminal process: above the first figure the socket a
   * chunk arrives on stops being read (TCP then holds the server back), and at the second every
   * paused socket reads again (player/core/unwritten-budget.ts). Node terminals only: a browser's
   * WebSocket cannot pause, so there the delivery window is the bound.
   */
  terminalUnwrittenPauseBytes: 16 * 1024 * 1024,
  terminalUnwrittenResumeBytes: 4 * 1024 * 1024,
  /** Control messages per connection per second (token bucket refill) and burst. */
  messagesPerSecond: 50,
  messageBurst: 200,
  /** Open connections from one IP address. */
  connectionsPerIp: 200,
  /** Orders one customer may place per minute. */
  ordersPerMinute: 20,
  /** Failed logins per e-mail per 15 minutes before further attempts are refused. */
  loginFailuresPerWindow: 5,
  loginFailureWindowMs: 15 * 60 * 1000,
  /** Wrong pairing codes one account may enter per 10 minutes (codes are guessable only by brute force). */
  pairingFailuresPerWindow: 10,
  pairingFailureWindowMs: 10 * 60 * 1000,
  /** Terminals per customer account. */
  terminalsPerCustomer: 5,
  /** Pairing codes live this long and can be used once. */
  pairingCodeTtlMs: 10 * 60 * 1000,
  /** Session tokens expire after this long unless revoked earlier. */
  sessionTtlMs: 30 * 24 * 60 * 60 * 1000,
  /** Rental period bounds (seconds). The minimum is a server setting so tests and demos can be short. */
  defaultMinRentalSeconds: 10,
  maxRentalSeconds: 30 * 24 * 60 * 60,
  /** How far ahead a delivery or key release may be scheduled. */
  maxScheduleAheadMs: 90 * 24 * 60 * 60 * 1000,
  /** Largest ad creative; a pre-roll travels whole inside a delivery, so it stays small. */
  maxCreativeBytes: 4 * 1024 * 1024,
  /** How long a still-image pre-roll stays on screen. */
  imagePrerollSeconds: 5,
  /** Largest title the store ingests. */
  maxTitleBytes: 8 * 1024 * 1024 * 1024,
  /** String field bounds. */
  maxEmailLength: 254,
  minPasswordLength: 8,
  maxPasswordLength: 256,
  maxNameLength: 64,
  /** The server pings every connection this often and drops one that missed the previous ping. */
  heartbeatMs: 30_000,
  /** Tolerated skew between a terminal clock and server-signed time before we call it "turned back". */
  clockSkewToleranceMs: 5 * 60 * 1000,
} as const;
