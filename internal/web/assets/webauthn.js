// Security keys and passkeys (WebAuthn) for the sign-in form, the
// step-up prompt and the Account page. The server decides everything: this
// module asks the API for a challenge, lets the browser's authenticator
// answer it (navigator.credentials), and submits the answer with the
// page's own form in its "webauthn" field. Without script or WebAuthn the
// buttons stay hidden and codes still work.

const b64url = {
  decode(s) {
    const b = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(b, (c) => c.charCodeAt(0)).buffer;
  },
  encode(buf) {
    let s = "";
    for (const c of new Uint8Array(buf)) s += String.fromCharCode(c);
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

// The API's options (JSON, binary members in base64url) as the browser
// wants them.
function creationOptions(o) {
  return {
    ...o,
    challenge: b64url.decode(o.challenge),
    user: { ...o.user, id: b64url.decode(o.user.id) },
    excludeCredentials: (o.excludeCredentials || []).map((c) => ({ ...c, id: b64url.decode(c.id) })),
  };
}

function requestOptions(o) {
  return {
    ...o,
    challenge: b64url.decode(o.challenge),
    allowCredentials: (o.allowCredentials || []).map((c) => ({ ...c, id: b64url.decode(c.id) })),
  };
}

// The browser's credential as the API reads it (PublicKeyCredential JSON).
function credentialJSON(c) {
  const r = c.response;
  const response = { clientDataJSON: b64url.encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64url.encode(r.attestationObject);
    if (r.getTransports) response.transports = r.getTransports();
  } else {
    response.authenticatorData = b64url.encode(r.authenticatorData);
    response.signature = b64url.encode(r.signature);
    if (r.userHandle) response.userHandle = b64url.encode(r.userHandle);
  }
  return {
    id: c.id,
    rawId: b64url.encode(c.rawId),
    type: c.type,
    authenticatorAttachment: c.authenticatorAttachment || undefined,
    clientExtensionResults: c.getClientExtensionResults(),
    response,
  };
}

function say(form, text) {
  const status = form.querySelector("[data-webauthn-status]");
  if (status) {
    status.textContent = text;
    status.hidden = false;
  }
}

// api POSTs body to path and returns the JSON answer; a refusal throws
// its detail.
async function api(path, body, headers) {
  const resp = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(answer.detail || answer.title || "HTTP " + resp.status);
  return answer;
}

function basic(user, password) {
  let s = "";
  for (const c of new TextEncoder().encode(user + ":" + password)) s += String.fromCharCode(c);
  return "Basic " + btoa(s);
}

// answer fills the form's webauthn field with the ceremony's answer and
// submits the form.
function answer(form, ceremony, credential) {
  form.elements.webauthn.value = JSON.stringify({ ceremony, credential: credentialJSON(credential) });
  form.submit();
}

async function signIn(form) {
  const user = form.elements.username.value;
  const password = form.elements.password.value;
  if (!user || !password) {
    say(form, "Enter your user name and password first.");
    return;
  }
  const start = await api("/api/v1/mfa/webauthn/challenge", {}, { Authorization: basic(user, password) });
  const cred = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
  answer(form, start.ceremony, cred);
}

async function stepUp(form) {
  const start = await api("/api/v1/mfa/webauthn/challenge", {}, { "X-CSRF-Token": form.elements.csrf.value });
  const cred = await navigator.credentials.get({ publicKey: requestOptions(start.publicKey) });
  answer(form, start.ceremony, cred);
}

async function register(form) {
  const start = await api("/api/v1/mfa/webauthn", { name: form.elements.name.value }, { "X-CSRF-Token": form.elements.csrf.value });
  const cred = await navigator.credentials.create({ publicKey: creationOptions(start.publicKey) });
  answer(form, start.ceremony, cred);
}

// run runs a ceremony, saying why when it does not finish.
function run(form, ceremony) {
  ceremony(form).catch((e) => {
    const text = e && e.name === "NotAllowedError" ? "The security key did not answer (cancelled, timed out, or not registered here)." : String(e && e.message ? e.message : e);
    say(form, text);
  });
}

if (window.PublicKeyCredential && navigator.credentials) {
  for (const b of document.querySelectorAll('button[data-webauthn="signin"]')) {
    b.hidden = false;
    b.addEventListener("click", () => run(b.form, signIn));
  }
  for (const b of document.querySelectorAll('form[data-webauthn="stepup"] button[data-webauthn="assert"]')) {
    b.hidden = false;
    b.addEventListener("click", () => run(b.form, stepUp));
  }
  for (const f of document.querySelectorAll('form[data-webauthn="register"]')) {
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      run(f, register);
    });
  }
} else {
  for (const f of document.querySelectorAll('form[data-webauthn="register"]')) {
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      say(f, "This browser does not support security keys.");
    });
  }
}
