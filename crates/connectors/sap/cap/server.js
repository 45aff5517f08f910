// The test service's bootstrap: what SAP Gateway does around an OData service that CAP does not
// do itself, and the seed data.
//
// - `sap-client`: every OData request names the client (query parameter or header); a client
//   other than SAP_CLIENT is refused with SAP's error body, as a system without that client
//   refuses the logon.
// - CSRF: a GET with `x-csrf-token: Fetch` returns a token bound to a session cookie; a write
//   without that token and cookie is refused with 403 and `x-csrf-token: Required`.
// - Errors in SAP Gateway's V2 shape (`error.message.value`, `innererror`).
// - OAuth 2.0 client credentials at `/oauth/token`; bearer tokens on the services.
// - `/_test/`: the test control API (source faults the connector tests need), which a real
//   system does not have. It takes the same Basic credentials as the services.
// - Seeding from the public excavator work order export (see seed.js).
//
// Configuration, from the environment: PORT (0: any free port; the bound port is printed as a
// JSON line once the server listens), SAP_CLIENT (default 100), MILLRACE_SHARED_DATA (the data
// sets folder), SAP_SEED (`excavators` or `empty`), SAP_SEED_ASSETS (excavators to load, e.g.
// `A,B`), SAP_SEED_ORDERS (the most orders to load). Users come from CDS_CONFIG.

const cds = require('@sap/cds')
const crypto = require('node:crypto')
const seed = require('./seed')
const handlers = require('./handlers')

const client = process.env.SAP_CLIENT || '100'
const sessions = new Map() // session cookie value -> CSRF token
const state = handlers.state

// SAP's error body. OData V4 requests get V4's shape (`message` a string); the V2 adapter
// turns it into Gateway's V2 shape (`message.value`, `innererror.errordetails`) for V2 paths.
function sapError(res, status, code, message) {
  res.status(status).type('application/json').send(JSON.stringify({
    error: {
      code,
      message,
      '@Common.numericSeverity': 4,
      details: [{ code, message, '@Common.numericSeverity': 4 }],
    },
  }))
}

function isODataPath(path) {
  return path.startsWith('/sap/opu/odata/') || path.startsWith('/odata/v4/')
}

function cookieValue(req, name) {
  const header = req.headers.cookie || ''
  for (const part of header.split(';')) {
    const [key, ...rest] = part.trim().split('=')
    if (key === name) return rest.join('=')
  }
  return undefined
}

const sessionCookie = `SAP_SESSIONID_MRC_${client}`

function basicUser(header) {
  const [user, ...rest] = Buffer.from(String(header || '').replace(/^Basic /i, ''), 'base64')
    .toString().split(':')
  const users = cds.env.requires.auth.users || {}
  const password = rest.join(':')
  return users[user] && users[user].password === password ? { user, password } : null
}

cds.on('bootstrap', (app) => {
  // OAuth 2.0 client credentials, as the SAP BTP or S/4HANA Cloud token service issues them:
  // the client authenticates with Basic (a client here is a user of CDS_CONFIG), and the
  // token is accepted as a bearer token until the session fault ends every token.
  app.post('/oauth/token', require('express').urlencoded({ extended: false }), (req, res) => {
    const client = basicUser(req.headers.authorization)
    if (!client) {
      return res.status(401).json({ error: 'invalid_client', error_description: 'Bad client credentials' })
    }
    if ((req.body || {}).grant_type !== 'client_credentials') {
      return res.status(400).json({ error: 'unsupported_grant_type', error_description: 'Only client_credentials' })
    }
    const token = crypto.randomBytes(24).toString('base64url')
    state.tokens.set(token, client)
    state.logins += 1
    res.json({ access_token: token, token_type: 'bearer', expires_in: 43199 })
  })

  app.use((req, res, next) => {
    if (!isODataPath(req.path)) return next()

    // A bearer token stands for its client's Basic logon, which CAP's own auth then checks.
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization || '')
    if (bearer) {
      const client = state.tokens.get(bearer[1])
      if (!client) {
        res.set('www-authenticate', 'Bearer error="invalid_token"')
        return sapError(res, 401, '/IWFND/CM_CONSUMER/401', 'Logon failed: the access token is invalid or expired')
      }
      req.headers.authorization = 'Basic ' + Buffer.from(`${client.user}:${client.password}`).toString('base64')
    }

    // The credential fault: every request is refused as after a password change.
    if (state.rejectAuth) {
      res.set('www-authenticate', 'Basic realm="SAP NetWeaver Application Server"')
      return sapError(res, 401, '/IWFND/CM_CONSUMER/401', 'Logon failed: the password was changed')
    }

    const requested = req.query['sap-client'] || req.headers['sap-client']
    if (requested !== undefined && requested !== client) {
      return sapError(res, 401, '/IWFND/CM_CONSUMER/401',
        `Logon failed: client ${requested} is not available in this system`)
    }

    const fetchToken = String(req.headers['x-csrf-token'] || '').toLowerCase() === 'fetch'
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (fetchToken) {
        let session = cookieValue(req, sessionCookie)
        if (!session || !sessions.has(session)) {
          session = crypto.randomBytes(16).toString('hex')
          sessions.set(session, crypto.randomBytes(16).toString('base64'))
          res.cookie(sessionCookie, session, { httpOnly: true, path: '/' })
        }
        res.set('x-csrf-token', sessions.get(session))
      }
      return next()
    }

    const session = cookieValue(req, sessionCookie)
    const expected = session && sessions.get(session)
    if (!expected || req.headers['x-csrf-token'] !== expected) {
      res.set('x-csrf-token', 'Required')
      return sapError(res, 403, '/IWFND/CM_BEC/026', 'CSRF token validation failed')
    }
    return next()
  })

  app.use('/_test', require('express').json(), (req, res, next) => {
    if (!basicUser(req.headers.authorization)) {
      return sapError(res, 401, '/IWFND/CM_CONSUMER/401', 'Logon failed')
    }
    next()
  })
  app.get('/_test/stats', (req, res) => res.json({ logins: state.logins }))
  app.post('/_test/faults', (req, res) => {
    const body = req.body || {}
    if ('reject_auth' in body) state.rejectAuth = Boolean(body.reject_auth)
    if ('clock_offset_seconds' in body) state.clockOffsetMs = Number(body.clock_offset_seconds) * 1000
    if ('corrupt' in body) state.corrupt = new Set(body.corrupt.map(String))
    if (body.expire_sessions) {
      // Sessions time out: OAuth tokens and the CSRF tokens bound to session cookies alike.
      state.tokens.clear()
      sessions.clear()
    }
    res.json({ ok: true })
  })
})

cds.on('served', async (services) => {
  handlers.register(services)
  if ((process.env.SAP_SEED || 'excavators') !== 'empty') {
    await seed.load({
      dataDir: process.env.MILLRACE_SHARED_DATA,
      assets: (process.env.SAP_SEED_ASSETS || 'A,B,C,D,E').split(','),
      maxOrders: Number(process.env.SAP_SEED_ORDERS || 400),
    })
  } else {
    await seed.loadPlants()
  }
})

cds.on('listening', ({ server }) => {
  process.stdout.write(JSON.stringify({ ready: true, port: server.address().port, client }) + '\n')
})

module.exports = cds.server
