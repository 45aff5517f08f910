// Service handlers standing in for what the S/4HANA application does on writes: it stamps
// LastChangeDateTime (LastChangeDate on measuring points, which have no change time; nothing
// on measurement documents, which have neither), draws numbers for new orders, notifications,
// equipment and measurement documents, and marks master data and notifications for deletion
// instead of deleting them.
//
// Tests may set LastChangeDateTime themselves (a value, or null) to exercise the connector's
// change tracking; a write that does not name it is stamped with the server's clock, moved
// by the clock fault.

const cds = require('@sap/cds')

/** The switches of the `/_test/faults` control API. */
const state = { rejectAuth: false, clockOffsetMs: 0, corrupt: new Set(), tokens: new Map(), logins: 0 }

/**
 * Per entity: the number field drawn on create, its first number, the deletion flag and the
 * value that sets it, and the change field (`LastChangeDateTime`, `LastChangeDate`, or null).
 */
const timed = { changed: 'LastChangeDateTime', flagValue: true }
const entities = {
  MaintenanceOrder: { ...timed, key: 'MaintenanceOrder', first: 4000000, deletionFlag: null },
  MaintenanceNotification: { ...timed, key: 'MaintenanceNotification', first: 10000000, deletionFlag: 'IsDeleted' },
  Equipment: { ...timed, key: 'Equipment', first: 10000000, deletionFlag: 'EquipmentIsMarkedForDeletion' },
  FunctionalLocation: { ...timed, key: 'FunctionalLocation', first: null, deletionFlag: 'FuncnlLocIsMarkedForDeletion' },
  A_PurchaseOrder: { ...timed, key: 'PurchaseOrder', first: 4500000000, deletionFlag: null },
  MeasuringPoint: {
    key: 'MeasuringPoint', first: 1001, deletionFlag: 'MultiLevelDeletionLogicStatus', flagValue: 'X',
    changed: 'LastChangeDate',
  },
  MeasurementDocument: { key: 'MeasurementDocument', first: 100001, deletionFlag: null, changed: null },
}

function now() {
  return new Date(Date.now() + state.clockOffsetMs).toISOString()
}

/** The change field's value now: a time stamp, or a date for `LastChangeDate`. */
function changedNow(field) {
  return field === 'LastChangeDate' ? now().slice(0, 10) : now()
}

function stamper(config) {
  return (req) => {
    const field = config.changed
    if (field && (!(field in req.data) || req.data[field] === undefined)) {
      req.data[field] = changedNow(field)
    }
  }
}

function register(services) {
  for (const srv of Object.values(services)) {
    if (!(srv instanceof cds.ApplicationService)) continue
    for (const [name, entity] of Object.entries(srv.entities)) {
      const config = entities[name]
      if (!config) continue

      const stamp = stamper(config)
      srv.before('CREATE', entity, async (req) => {
        stamp(req)
        if (config.first !== null && !req.data[config.key]) {
          const rows = await SELECT.from(entity).columns(config.key)
          const taken = rows.map((row) => Number(row[config.key])).filter(Number.isFinite)
          req.data[config.key] = String(Math.max(config.first - 1, ...taken) + 1)
        }
        if (config.changed && !req.data.CreationDate) req.data.CreationDate = now().slice(0, 10)
      })

      srv.before('UPDATE', entity, stamp)

      if (config.deletionFlag) {
        // S/4HANA keeps the record and sets its deletion flag; the flag is itself a change.
        // Prepended, so that it runs instead of the generic handler that deletes the row.
        srv.prepend(() => srv.on('DELETE', entity, async (req) => {
          const keys = req.params[req.params.length - 1]
          const where = keys && typeof keys === 'object' ? keys : { [config.key]: keys }
          const updated = await UPDATE(entity)
            .set({ [config.deletionFlag]: config.flagValue, [config.changed]: changedNow(config.changed) })
            .where(where)
          if (!updated) req.reject(404, `${name} ${JSON.stringify(where)} does not exist`)
        }))
      }

      // The corrupt-record fault: such a record is served with an unreadable change time.
      srv.after('READ', entity, (rows) => {
        if (state.corrupt.size === 0) return
        for (const row of Array.isArray(rows) ? rows : [rows]) {
          if (row && config.changed && state.corrupt.has(String(row[config.key]))) {
            row[config.changed] = 'not a time'
          }
        }
      })
    }
  }
}

module.exports = { state, register }
