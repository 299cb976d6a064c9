// Compiled by test/types.test.js with `tsc --noEmit --strict`: every use below must
// type-check against the generated index.d.ts, and every `@ts-expect-error` line must be
// an error. Not run.
import {
  AuditRecord, CardSummary, CreateSessionOptions, FieldProblem, KeyOptions, RevealedBuffers, RevealedFields,
  SessionStatus, SessionTicket, StoreOptions, SubmitReceipt, Vault, VaultOptions,
} from '../..';

type State = 'pending' | 'submitted' | 'revealed' | 'cancelled' | 'locked';

export async function usage(): Promise<void> {
  const memory: VaultOptions = {
    store: 'memory',
    keys: { keyring: [{ id: 'k1', key: Buffer.alloc(32, 1) }] },
    sessionDefaults: { ttlSeconds: 60, pinLength: 6, maxAttempts: 5, fields: ['card_number'] },
    tenant: 'acme',
    auditKey: Buffer.alloc(32, 2),
    onAudit: (event: AuditRecord) => {
      const action: 'created' | 'submitted' | 'revealed' | 'locked' | 'cancelled' = event.action;
      const left: number | null = event.attemptsLeft;
      const at: Date = event.at;
      void [action, left, at, event.outcome, event.sessionRef, event.tenant, event.actor];
    },
  };
  const store: StoreOptions = {
    type: 'redis', url: ['redis://a:1', 'redis://b:2'], cluster: true, keyPrefix: 'p:', timeoutMs: 1,
    connectTimeoutMs: 1, caFile: 'ca.pem', clientCertFile: 'c.pem', clientKeyFile: 'k.pem',
  };
  const keys: KeyOptions[] = [
    { keyring: 'k1:abc' }, { env: 'PCI_VAULT_KEYS' }, { file: '/k' }, { directory: '/d' }, { development: true },
  ];
  const redis: VaultOptions = { store, keys: keys[1] };
  const bounded: VaultOptions = { store: { type: 'memory', maxEntries: 10, maxBytes: 1 << 20 }, keys: keys[4] };
  const url: VaultOptions = { store: 'redis://127.0.0.1:6379', keys: keys[0] };
  void [redis, bounded, url];

  const vault: Vault = await Vault.open(memory);
  const options: CreateSessionOptions = { ttlSeconds: 60, metadata: { conversation: 'c1' }, fields: ['cvc'] };
  const ticket: SessionTicket = await vault.createSession(options);
  await vault.createSession();
  await vault.createSession(null);
  const id: string = ticket.id;
  const expires: Date = ticket.expiresAt;

  const status: SessionStatus = await vault.status(id);
  const state: State = status.state;
  const submittedAt: Date | null = status.submittedAt;
  const left: number = status.attemptsLeft;
  const label: string | undefined = status.metadata.conversation;
  const names: string[] = status.fields;
  const shownCard: CardSummary | null = status.card;
  for await (const event of await vault.watch(id, { signal: new AbortController().signal })) {
    const kind: 'created' | 'opened' | 'submitted' | 'reveal_failed' | 'revealed' | 'locked' | 'cancelled' | 'expired' = event.type;
    const left: number = event.attemptsLeft;
    const when: Date = event.at;
  }

  const receipt: SubmitReceipt = await vault.submit(id, { card_number: '4242', cvc: Buffer.from('123') });
  const pin: string = receipt.pin;
  const form: RevealedFields = await vault.reveal(id, pin);
  const value: string | undefined = form.fields.card_number;
  const card: CardSummary | null = form.card;
  const masked: string | undefined = form.card?.maskedNumber;
  const buffers: RevealedBuffers = await vault.revealBuffers(id, pin);
  buffers.fields.card_number?.fill(0);
  const nothing: void = await vault.cancel(id);
  await vault.ping();
  const other: Vault = vault.forTenant('globex');
  const tenant: string = other.tenant;
  const warnings: string[] = vault.storeWarnings;
  const flushed: void = await vault.flushAudit();
  const auditFailures: number = vault.auditFailures();
  const problem: FieldProblem = { field: 'card_number', reason: 'luhn' };
  void [expires, state, submittedAt, left, label, names, value, card, masked, nothing, tenant, warnings, flushed, auditFailures, problem];

  // @ts-expect-error keys are required
  await Vault.open({ store: 'memory' });
  // @ts-expect-error a session id is a string
  await vault.status(42);
  // @ts-expect-error options have types
  await vault.createSession({ ttlSeconds: '60' });
  // @ts-expect-error there are two stores
  const disk: StoreOptions = { type: 'disk' };
  // @ts-expect-error field values are strings or Buffers
  await vault.submit(id, { card_number: 4242424242424242 });
  // @ts-expect-error a state is one of five
  const unknownState: SessionStatus['state'] = 'open';
  void [disk, unknownState];
}
