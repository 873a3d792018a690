// pam-2fa: the browser side of one WebAuthn ceremony, shared by the
// approval page (app.js) and the profile page (profile.js). Takes the
// options 2fad sent (binary fields in base64url), asks the authenticator,
// and returns the credential as the JSON 2fad reads back.
"use strict";
window.p2faCredential = (() => {
  const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4)), (c) => c.charCodeAt(0));
  const enc = (b) => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

  async function run(register, pk) {
    pk.challenge = dec(pk.challenge);
    if (register) {
      pk.user.id = dec(pk.user.id);
      (pk.excludeCredentials || []).forEach((c) => { c.id = dec(c.id); });
      const c = await navigator.credentials.create({ publicKey: pk });
      return {
        id: c.id, rawId: enc(c.rawId), type: c.type, extensions: c.getClientExtensionResults(),
        response: {
          attestationObject: enc(c.response.attestationObject),
          clientDataJSON: enc(c.response.clientDataJSON),
          transports: c.response.getTransports ? c.response.getTransports() : [],
        },
      };
    }
    (pk.allowCredentials || []).forEach((c) => { c.id = dec(c.id); });
    const a = await navigator.credentials.get({ publicKey: pk });
    return {
      id: a.id, rawId: enc(a.rawId), type: a.type, extensions: a.getClientExtensionResults(),
      response: {
        authenticatorData: enc(a.response.authenticatorData),
        clientDataJSON: enc(a.response.clientDataJSON),
        signature: enc(a.response.signature),
        userHandle: a.response.userHandle ? enc(a.response.userHandle) : null,
      },
    };
  }

  return { run };
})();
