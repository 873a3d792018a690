// pam-2fa profile page: the two things plain forms cannot do, proving
// with a security key and registering one (WebAuthn), and one nicety: a
// question field of one's own shows only while "Write my own question…"
// is chosen (without this script it always shows). Same-origin only;
// the ceremony's token stays on the server, the session's CSRF token
// goes in a header. Messages are set as text, never as HTML.
"use strict";
(() => {
  const csrf = document.body.dataset.csrf;
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
    const body = await window.p2faCredential.run(register, options.publicKey);
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

  // Security questions: the field for one's own question goes with its
  // choice (hidden and not sent while a listed question is chosen).
  document.querySelectorAll("select[data-own]").forEach((select) => {
    const box = document.getElementById(select.dataset.own);
    const input = box && box.querySelector("input");
    if (!input) return;
    const sync = () => {
      const own = select.value === "";
      box.hidden = !own;
      input.disabled = !own;
      input.required = own;
    };
    select.addEventListener("change", () => {
      sync();
      if (!input.disabled) input.focus();
    });
    sync();
  });

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
