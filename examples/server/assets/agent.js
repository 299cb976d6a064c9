// pci-vault agent console: create a link, follow its events as they happen (no polling),
// confirm the masked card, reveal the form once.
// Served as a same-origin file so the page's CSP needs no inline script. The API key and
// the revealed form live only in this page's memory.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const TERMINAL = ['revealed', 'cancelled', 'locked', 'expired'];
  let sessionId = null;
  let following = null; // the AbortController of the open event stream
  let cardShown = false;

  function say(text) {
    $('message').textContent = text;
  }

  function apiKey() {
    return $('api-key').value.trim();
  }

  async function call(method, path, body) {
    const headers = { Authorization: 'Bearer ' + apiKey() };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) {
      const error = (json && json.error) || { code: 'HTTP_' + response.status, message: response.statusText };
      // The message already says the attempts left of a wrong PIN.
      throw new Error(error.code + ': ' + error.message);
    }
    return json;
  }

  // Shows the state and offers only the actions that still apply: cancel while pending or
  // submitted, reveal while submitted.
  function showState(view) {
    $('state').textContent = view.state;
    const parts = [];
    if (view.expires_at) parts.push('expires ' + view.expires_at);
    if (view.state === 'submitted') parts.push(view.attempts_left + ' attempt(s) left');
    $('state-detail').textContent = parts.join(' · ');
    $('cancel').hidden = view.state !== 'pending' && view.state !== 'submitted';
    $('reveal').hidden = view.state !== 'submitted';
    if (view.state !== 'submitted') $('card-line').hidden = true;
  }

  // The masked card of a submitted session, read once when it is submitted.
  async function showCard() {
    if (cardShown || !sessionId) return;
    cardShown = true;
    try {
      const view = await call('GET', 'v1/sessions/' + sessionId);
      if (view.card && view.state === 'submitted') {
        $('summary-brand').textContent = view.card.brand;
        $('summary-masked').textContent = view.card.masked_number;
        $('card-line').hidden = false;
      }
    } catch (e) {
      say(e.message);
    }
  }

  function onEvent(type, data) {
    showState({ state: type === 'expired' ? 'expired' : data.state, attempts_left: data.attempts_left, expires_at: $('state').dataset.expiresAt });
    if (type === 'opened') say('The customer opened the link.');
    if (type === 'submitted') {
      say('The customer submitted the form. Confirm the card, then ask for the PIN.');
      showCard();
    }
    if (type === 'locked') say('Too many wrong PINs: the session is locked and its data destroyed.');
    if (type === 'expired') say('The link expired.');
  }

  // Follows the session's events (Server-Sent Events, read through fetch so the API key
  // goes in a header) until a terminal one; reconnects if the stream breaks before.
  async function follow(id, controller) {
    let ended = false;
    while (!ended && !controller.signal.aborted && id === sessionId) {
      try {
        const response = await fetch('v1/sessions/' + id + '/events', {
          headers: { Authorization: 'Bearer ' + apiKey(), Accept: 'text/event-stream' },
          cache: 'no-store',
          credentials: 'omit',
          signal: controller.signal,
        });
        if (!response.ok) {
          const json = await response.json().catch(() => null);
          const error = (json && json.error) || { code: 'HTTP_' + response.status, message: response.statusText };
          $('state-detail').textContent = error.code + ': ' + error.message;
          // A server that is full or briefly unavailable (503) is tried again below; any
          // other answer (unknown session, wrong key) ends the follow.
          if (response.status !== 503) return;
          await new Promise((r) => setTimeout(r, 4000));
          continue;
        }
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let type = '';
            let data = '';
            for (const line of block.split('\n')) {
              if (line.startsWith('event:')) type = line.slice(6).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trim();
            }
            if (!type) continue; // a heartbeat
            const parsed = JSON.parse(data);
            if (type === 'error') {
              $('state-detail').textContent = parsed.error.code + ': ' + parsed.error.message;
              return;
            }
            // The server is stopping: the stream ends next; follow again (another server
            // answers), from the session's state.
            if (type === 'shutdown') continue;
            onEvent(type, parsed);
            if (TERMINAL.includes(type)) ended = true;
          }
        }
      } catch (e) {
        if (controller.signal.aborted) return;
      }
      if (!ended) await new Promise((r) => setTimeout(r, 1000));
    }
  }

  function clearResult() {
    $('result').hidden = true;
    $('brand').textContent = '';
    $('masked').textContent = '';
    $('fields').tBodies[0].replaceChildren();
  }

  $('create').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearResult();
    say('');
    try {
      const ttl = Number($('ttl').value) || 900;
      const created = await call('POST', 'v1/sessions', { ttl_seconds: ttl });
      if (following) following.abort();
      sessionId = created.id;
      cardShown = false;
      $('link').textContent = created.url;
      $('link').href = created.url;
      $('session').hidden = false;
      $('state').dataset.expiresAt = created.expires_at;
      showState({ state: created.state, expires_at: created.expires_at });
      following = new AbortController();
      follow(created.id, following);
      say('Link created. Send it to the customer.');
    } catch (e) {
      say(e.message);
    }
  });

  $('cancel').addEventListener('click', async () => {
    if (!sessionId) return;
    try {
      await call('DELETE', 'v1/sessions/' + sessionId);
      say('Session cancelled; its data is destroyed.');
    } catch (e) {
      say(e.message);
    }
  });

  $('reveal').addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!sessionId) {
      say('Create a link first.');
      return;
    }
    const pin = $('pin').value.trim();
    $('pin').value = '';
    try {
      const revealed = await call('POST', 'v1/sessions/' + sessionId + '/reveal', { pin });
      const rows = Object.entries(revealed.fields).map(([name, value]) => {
        const row = document.createElement('tr');
        const th = document.createElement('th');
        th.scope = 'row';
        th.textContent = name;
        const td = document.createElement('td');
        td.textContent = value;
        row.append(th, td);
        return row;
      });
      $('fields').tBodies[0].replaceChildren(...rows);
      $('brand').textContent = revealed.card ? revealed.card.brand : '';
      $('masked').textContent = revealed.card ? revealed.card.masked_number : '';
      $('result').hidden = false;
      say('Revealed. This was the only time: the stored data is destroyed.');
    } catch (e) {
      say(e.message);
    }
  });

  $('clear').addEventListener('click', () => {
    clearResult();
    say('Cleared from the screen.');
  });
})();
