// Calls to the gateway's native /v1 API with the admin token kept in this tab's sessionStorage.

const TOKEN_KEY = 'pushgate.adminToken';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** An error answer of the API: `code`, `message` and, when one field is to blame, `field`. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
}

async function call(method, path, body, tokenOverride) {
  const headers = { Accept: 'application/json' };
  const bearer = tokenOverride ?? token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (err) {
    throw new ApiError(0, 'network', `The gateway could not be reached (${err.message}).`);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    const e = data && data.error;
    throw new ApiError(
      resp.status,
      (e && e.code) || `http_${resp.status}`,
      (e && e.message) || `The gateway answered ${resp.status} ${resp.statusText}.`,
      e && e.field,
    );
  }
  return data;
}

export const api = {
  /** Checks a token before keeping it: any admin call answers 401 to a wrong one. */
  verify: (candidate) => call('GET', '/v1/certificates', undefined, candidate),
  listCertificates: () => call('GET', '/v1/certificates').then((d) => (d && d.certificates) || []),
  getCertificate: (id) => call('GET', `/v1/certificates/${encodeURIComponent(id)}`),
  createCertificate: (body) => call('POST', '/v1/certificates', body),
  updateCertificate: (id, body) => call('PUT', `/v1/certificates/${encodeURIComponent(id)}`, body),
  deleteCertificate: (id) => call('DELETE', `/v1/certificates/${encodeURIComponent(id)}`),
  diagnose: (user) => call('GET', `/v1/users/${encodeURIComponent(user)}/diagnosis`),
};
