// pam-2fa profile page: the two things plain forms cannot do, proving
// with a security key and registering one (WebAuthn). Same-origin only;
// the ceremony's token stays on the server, the session's CSRF token
// goes in a header. Messages are set as text, never as HTML.
"use strict";
(() => {
  const csrf = document.body.dataset.csrf;
  const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
  const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const flash = document.getElementById("flash");
  const say = (text, ok) => {
    flash.textContent = "";
    const p = document.createElement("p");
    p.className = ok ? "ok" : "bad";
    p.textContent = text;
    flash.appendChild(p);
  };
  const post = async (path, body) => {
    const r = await fetch(path, {
      method: "POST", cache: "no-store", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    let j = {};
    try { j = await r.json(); } catch (e) { j = { ok: false, message: r.statusText }; }
    if (!r.ok || !j.ok) throw new Error(j.message || r.statusText);
    return j;
  };

  async function ceremony(begin) {
    const { register, options } = await post("/profile/key/begin", begin);
    const pk = options.publicKey;
    pk.challenge = dec(pk.challenge);
    let body;
    if (register) {
      pk.user.id = dec(pk.user.id);
      (pk.excludeCredentials || []).forEach((c) => { c.id = dec(c.id); });
      const c = await navigator.credentials.create({ publicKey: pk });
      body = {
        id: c.id, rawId: enc(c.rawId), type: c.type, extensions: c.getClientExtensionResults(),
        response: {
          attestationObject: enc(c.response.attestationObject),
          clientDataJSON: enc(c.response.clientDataJSON),
          transports: c.response.getTransports ? c.response.getTransports() : [],
        },
      };
    } else {
      (pk.allowCredentials || []).forEach((c) => { c.id = dec(c.id); });
      const a = await navigator.credentials.get({ publicKey: pk });
      body = {
        id: a.id, rawId: enc(a.rawId), type: a.type, extensions: a.getClientExtensionResults(),
        response: {
          authenticatorData: enc(a.response.authenticatorData),
          clientDataJSON: enc(a.response.clientDataJSON),
          signature: enc(a.response.signature),
          userHandle: a.response.userHandle ? enc(a.response.userHandle) : null,
        },
      };
    }
    return post("/profile/key/finish", body);
  }

  async function run(button, begin) {
    button.disabled = true;
    say(button.dataset.waiting || "…", true);
    try {
      await ceremony(begin);
      location.reload();
    } catch (e) {
      say(e.message, false);
      button.disabled = false;
    }
  }

  const prove = document.getElementById("prove-key");
  if (prove) prove.addEventListener("click", () => run(prove, { kind: "prove" }));
  const add = document.getElementById("add-key");
  if (add) {
    add.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const name = document.getElementById("key-name").value.trim();
      run(document.getElementById("key-add"), { kind: "register", name });
    });
  }
})();
