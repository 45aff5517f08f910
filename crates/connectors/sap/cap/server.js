// The test service's bootstrap: what SAP Gateway does around an OData service that CAP does not
// do itself, and the seed data.
//
// - `sap-client`: every OData request names the client (query parameter or header); a client
//   other than SAP_CLIENT is refused with SAP's error body, as a system without that client
//   refuses the logon.
// - CSRF: a GET with `x-csrf-token: Fetch` returns a token bound to a session cookie; a write
//   without that token and cookie is refused with 403 and `x-csrf-token: Required`.
// - Errors in SAP Gateway's V2 shape (`error.message.value`, `innererror`).
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

cds.on('bootstrap', (app) => {
  app.use((req, res, next) => {
    if (!isODataPath(req.path)) return next()

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
    const header = req.headers.authorization || ''
    const [user, password] = Buffer.from(header.replace(/^Basic /, ''), 'base64')
      .toString().split(':')
    const users = cds.env.requires.auth.users || {}
    if (!users[user] || users[user].password !== password) {
      return sapError(res, 401, '/IWFND/CM_CONSUMER/401', 'Logon failed')
    }
    next()
  })
  app.post('/_test/faults', (req, res) => {
    const body = req.body || {}
    if ('reject_auth' in body) state.rejectAuth = Boolean(body.reject_auth)
    if ('clock_offset_seconds' in body) state.clockOffsetMs = Number(body.clock_offset_seconds) * 1000
    if ('corrupt' in body) state.corrupt = new Set(body.corrupt.map(String))
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
