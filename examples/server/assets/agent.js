// pci-vault agent console: create a link, follow its state, reveal the form once.
// Served as a same-origin file so the page's CSP needs no inline script. The API key and
// the revealed form live only in this page's memory.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  let sessionId = null;
  let poll = null;

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
      const detail = error.attempts_left !== undefined ? ' (' + error.attempts_left + ' attempt(s) left)' : '';
      throw new Error(error.code + ': ' + error.message + detail);
    }
    return json;
  }

  function showState(view) {
    $('state').textContent = view.state;
    const parts = ['expires ' + view.expires_at];
    if (view.submitted_at) parts.push('submitted ' + view.submitted_at);
    if (view.state === 'submitted') parts.push(view.attempts_left + ' attempt(s) left');
    $('state-detail').textContent = parts.join(' · ');
  }

  async function refresh() {
    if (!sessionId) return;
    try {
      showState(await call('GET', 'v1/sessions/' + sessionId));
    } catch (e) {
      $('state').textContent = 'unknown';
      $('state-detail').textContent = e.message;
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
      sessionId = created.id;
      $('link').textContent = created.url;
      $('link').href = created.url;
      $('session').hidden = false;
      showState({ state: created.state, expires_at: created.expires_at });
      if (poll) clearInterval(poll);
      poll = setInterval(refresh, 2000);
      say('Link created. Send it to the customer.');
    } catch (e) {
      say(e.message);
    }
  });

  $('cancel').addEventListener('click', async () => {
    if (!sessionId) return;
    try {
      await call('DELETE', 'v1/sessions/' + sessionId);
      await refresh();
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
    await refresh();
  });

  $('clear').addEventListener('click', () => {
    clearResult();
    say('Cleared from the screen.');
  });
})();
