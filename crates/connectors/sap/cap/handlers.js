// Service handlers standing in for what the S/4HANA application does on writes: it stamps
// LastChangeDateTime, draws numbers for new orders, notifications and equipment, and marks
// master data and notifications for deletion instead of deleting them.
//
// Tests may set LastChangeDateTime themselves (a value, or null) to exercise the connector's
// change tracking; a write that does not name it is stamped with the server's clock, moved
// by the clock fault.

const cds = require('@sap/cds')

/** The switches of the `/_test/faults` control API. */
const state = { rejectAuth: false, clockOffsetMs: 0, corrupt: new Set(), tokens: new Map(), logins: 0 }

/** Per entity: the number field drawn on create, its first number and the deletion flag. */
const entities = {
  MaintenanceOrder: { key: 'MaintenanceOrder', first: 4000000, deletionFlag: null },
  MaintenanceNotification: { key: 'MaintenanceNotification', first: 10000000, deletionFlag: 'IsDeleted' },
  Equipment: { key: 'Equipment', first: 10000000, deletionFlag: 'EquipmentIsMarkedForDeletion' },
  FunctionalLocation: { key: 'FunctionalLocation', first: null, deletionFlag: 'FuncnlLocIsMarkedForDeletion' },
  A_PurchaseOrder: { key: 'PurchaseOrder', first: 4500000000, deletionFlag: null },
}

function now() {
  return new Date(Date.now() + state.clockOffsetMs).toISOString()
}

function stamp(req) {
  if (!('LastChangeDateTime' in req.data) || req.data.LastChangeDateTime === undefined) {
    req.data.LastChangeDateTime = now()
  }
}

function register(services) {
  for (const srv of Object.values(services)) {
    if (!(srv instanceof cds.ApplicationService)) continue
    for (const [name, entity] of Object.entries(srv.entities)) {
      const config = entities[name]
      if (!config) continue

      srv.before('CREATE', entity, async (req) => {
        stamp(req)
        if (config.first !== null && !req.data[config.key]) {
          const rows = await SELECT.from(entity).columns(config.key)
          const taken = rows.map((row) => Number(row[config.key])).filter(Number.isFinite)
          req.data[config.key] = String(Math.max(config.first - 1, ...taken) + 1)
        }
        if (!req.data.CreationDate) req.data.CreationDate = now().slice(0, 10)
      })

      srv.before('UPDATE', entity, stamp)

      if (config.deletionFlag) {
        // S/4HANA keeps the record and sets its deletion flag; the flag is itself a change.
        // Prepended, so that it runs instead of the generic handler that deletes the row.
        srv.prepend(() => srv.on('DELETE', entity, async (req) => {
          const keys = req.params[req.params.length - 1]
          const where = keys && typeof keys === 'object' ? keys : { [config.key]: keys }
          const updated = await UPDATE(entity)
            .set({ [config.deletionFlag]: true, LastChangeDateTime: now() })
            .where(where)
          if (!updated) req.reject(404, `${name} ${JSON.stringify(where)} does not exist`)
        }))
      }

      // The corrupt-record fault: such a record is served with an unreadable change time.
      srv.after('READ', entity, (rows) => {
        if (state.corrupt.size === 0) return
        for (const row of Array.isArray(rows) ? rows : [rows]) {
          if (row && state.corrupt.has(String(row[config.key]))) {
            row.LastChangeDateTime = 'not a time'
          }
        }
      })
    }
  }
}

module.exports = { state, register }
