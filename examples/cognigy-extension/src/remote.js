'use strict';
// The vault over a pci-vault server's agent API (HTTP), for Cognigy environments that do
// not allow native addons. It answers like the in-process `Vault` of @pci-vault/node —
// the same methods, results and error codes — so the nodes do not know which one they use.

/** How long one request may take, in milliseconds. */
const TIMEOUT_MS = 10_000;

/** An error the nodes treat like the binding's: a stable `code`, a message without secrets. */
function vaultError(code, message, extra = {}) {
  return Object.assign(new Error(message), { code }, extra);
}

/**
 * The server's base URL, checked: https, or http on a loopback address only (the agent API
 * carries clear card data and the API key). No credentials in the URL.
 * @param {string} text
 */
function parseBaseUrl(text) {
  let url;
  try {
    url = new URL(text.trim());
  } catch {
    throw vaultError('INVALID_ARGUMENT', 'the pci-vault connection: serverUrl is not a URL');
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw vaultError('INVALID_ARGUMENT', 'the pci-vault connection: serverUrl must be https:// (http:// only on a loopback address)');
  }
  if (url.username || url.password || url.search || url.hash) {
    throw vaultError('INVALID_ARGUMENT', 'the pci-vault connection: serverUrl must hold no credentials, query or fragment');
  }
  return url.href.replace(/\/+$/, '');
}

/** A session id as the server's paths take it; anything else never reaches a URL. */
function sessionPath(id) {
  if (typeof id !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    throw vaultError('INVALID_ARGUMENT', 'the session id is malformed');
  }
  return `/v1/sessions/${id}`;
}

function toDate(text) {
  return text === null || text === undefined ? null : new Date(text);
}

class RemoteVault {
  /**
   * @param {string} serverUrl the server's base URL (its `--public-url`, or an internal address)
   * @param {string} apiKey an agent API key of the server (`--api-keys`)
   */
  constructor(serverUrl, apiKey) {
    if (!/^[\x21-\x7e]{16,256}$/.test(apiKey)) {
      throw vaultError('INVALID_ARGUMENT', 'the pci-vault connection: apiKey must be 16–256 visible ASCII characters');
    }
    this.baseUrl = parseBaseUrl(serverUrl);
    // Not enumerable: the key never shows when the object is logged or serialized.
    Object.defineProperty(this, 'authorization', { value: `Bearer ${apiKey}` });
  }

  /**
   * One request to the agent API: the parsed JSON body on success, else the server's error
   * as a `vaultError` with its code. No answer at all is STORE_UNAVAILABLE (the vault
   * behind the server cannot be reached from here), as is an answer that is not the
   * server's.
   */
  async request(method, path, body) {
    let response;
    try {
      response = await fetch(`${this.baseUrl}${path}`, {
        method,
        headers: {
          authorization: this.authorization,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        redirect: 'error',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch {
      throw vaultError('STORE_UNAVAILABLE', 'the pci-vault server did not answer');
    }
    if (response.status === 204) return null;
    let payload;
    try {
      payload = await response.json();
    } catch {
      payload = undefined;
    }
    if (response.ok && payload && typeof payload === 'object') return payload;
    const error = payload?.error;
    if (!response.ok && error && typeof error.code === 'string' && /^[A-Z_]+$/.test(error.code)) {
      const extra = {};
      if (typeof error.attempts_left === 'number') extra.attemptsLeft = error.attempts_left;
      if (Array.isArray(error.fields)) extra.fields = error.fields;
      throw vaultError(error.code, String(error.message ?? error.code), extra);
    }
    throw vaultError('STORE_UNAVAILABLE', `the pci-vault server answered HTTP ${response.status} without a pci-vault answer`);
  }

  /** `POST /v1/sessions`: `{ id, url, expiresAt }`. */
  async createSession({ ttlSeconds, metadata } = {}) {
    const created = await this.request('POST', '/v1/sessions', { ttl_seconds: ttlSeconds, metadata });
    return { id: created.id, url: created.url, expiresAt: toDate(created.expires_at) };
  }

  /** `GET /v1/sessions/{id}`: the state, times, attempts left, metadata and, once submitted, the masked card. */
  async status(id) {
    const view = await this.request('GET', sessionPath(id));
    return {
      state: view.state,
      createdAt: toDate(view.created_at),
      expiresAt: toDate(view.expires_at),
      submittedAt: toDate(view.submitted_at),
      attemptsLeft: view.attempts_left,
      metadata: view.metadata ?? {},
      fields: view.fields ?? [],
      card: view.card ? { brand: view.card.brand, maskedNumber: view.card.masked_number } : null,
    };
  }

  /** `POST /v1/sessions/{id}/reveal`: `{ fields, card: { brand, maskedNumber } }`, once. */
  async reveal(id, pin) {
    const path = `${sessionPath(id)}/reveal`;
    const form = await this.request('POST', path, { pin: String(pin) });
    return {
      fields: form.fields,
      card: form.card ? { brand: form.card.brand, maskedNumber: form.card.masked_number } : null,
    };
  }

  /** `DELETE /v1/sessions/{id}`. */
  async cancel(id) {
    await this.request('DELETE', sessionPath(id));
  }
}

module.exports = { RemoteVault };
