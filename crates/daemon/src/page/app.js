// pam-2fa: runs the WebAuthn ceremony for the link's token and posts the
// result to 2fad. No external assets; everything is same-origin.
"use strict";
const token = location.pathname.split("/").pop();
const status = document.getElementById("status");
const say = (text, cls) => { status.textContent = text; status.className = cls || ""; };
const put = (id, text) => { document.getElementById(id).textContent = String(text); };

// What is being approved, so a link passed on to someone else does not
// pass for their own login. Text nodes only (textContent), never HTML.
function showContext(c) {
  if (!c) return;
  const what = {
    login: "Approve a login",
    register: "Register the security key \u201c" + c.detail + "\u201d",
    confirm: "Confirm a change to your second factors: " + c.detail,
  }[c.action] || "Approve";
  put("ctx-action", what + ":");
  put("ctx-user", c.user);
  put("ctx-host", c.host);
  put("ctx-service", c.service || "-");
  put("ctx-rhost", c.rhost || "this machine (no remote address)");
  const t = new Date(c.time * 1000);
  put("ctx-time", t.toLocaleString() + " (" + t.toISOString().replace("T", " ").slice(0, 19) + " UTC)");
  put("ctx-code", c.code);
  document.getElementById("context").hidden = false;
}

async function ceremony() {
  const r = await fetch("/api/options/" + token, { cache: "no-store" });
  if (!r.ok) throw new Error(await r.text());
  const { register, options } = await r.json();
  showContext(options.context);
  const body = await window.p2faCredential.run(register, options.publicKey);
  const f = await fetch("/api/finish/" + token, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  if (!f.ok) throw new Error(await f.text());
  return register;
}

async function go() {
  document.getElementById("go").disabled = true;
  say("Waiting for your authenticator…");
  try {
    const registered = await ceremony();
    say(registered ? "Key registered. You can close this page and return to your terminal."
                   : "Approved. Return to your terminal and press Enter.", "ok");
    document.title = "pam-2fa: done";
  } catch (e) {
    say("Not approved: " + e.message, "bad");
    document.title = "pam-2fa: failed";
    document.getElementById("go").disabled = false;
  }
}

document.getElementById("go").addEventListener("click", go);
if (location.pathname.startsWith("/r/")) {
  document.getElementById("heading").textContent = "Register a security key";
}
// Browsers may allow the ceremony without a click; try at once.
go();
