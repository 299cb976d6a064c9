'use strict';
// The other process of events.test.js: opens its own vault on the same Redis and runs the
// commands its parent sends, answering each.

const { Vault } = require('..');

let vault;
process.on('message', async (message) => {
  try {
    if (message.open) {
      const keyring = message.open.keys.keyring.map((k) => ({ id: k.id, key: Buffer.from(k.key) }));
      vault = await Vault.open({ ...message.open, keys: { keyring } });
      process.send('ready');
    } else if (message.submit) {
      const { pin } = await vault.submit(message.submit, {
        card_number: '4242 4242 4242 4242', expiry: '12/34', cvc: '123', cardholder_name: 'Ada Lovelace',
      });
      process.send(pin);
    } else if (message.reveal) {
      try {
        await vault.reveal(message.reveal, message.pin);
        process.send('ok');
      } catch (e) {
        process.send(e.code === 'WRONG_PIN' ? `WRONG_PIN:${e.attemptsLeft}` : e.code);
      }
    }
  } catch (e) {
    process.send(`error ${e.code}`);
  }
});
