// Seed data from the public excavator maintenance work order export (Hodkiewicz & Ho 2016,
// `excavator-mwo` in the shared data folder): five hydraulic mining excavators and their SAP
// PM orders. What the export lacks is derived, the same way on every start:
//
// - one plant per instance (SAP_SEED_PLANT, default AU01) standing for the mine site;
// - one piece of equipment per excavator (10000001 for A, ... 10000005 for E) under a
//   functional location per excavator, with one child location per functional location text
//   of the export (BUCKET, GREASE LUBE SYSTEM, ...);
// - one order per row, numbered 4000000 plus the row number, with the row's order type
//   (PMType), short text, basic start date and cost (AUD); its one operation 0010 names the
//   major system and part. Corrective orders (PM01) come with a malfunction notification;
// - dates move forward by whole days so that the newest row falls on yesterday (the export
//   ends in 2012); the basic start time is 07:00 UTC and LastChangeDateTime is the start date
//   at 18:00 UTC; orders started more than 14 days ago are in phase 07 (completion), the rest in
//   05 (execution);
// - equipment carries the make (O&K) and model (RH120C or RH120E, and the SHD number where
//   given) that the export's functional location texts name;
// - each replacement order (PM02) with a cost has a purchase order (4500000000 plus the row
//   number) with one item for its part at that cost, from supplier 0000100001, O&K; that the
//   parts were bought from the maker is an assumption the export does not state.
//
// Measuring points and measurement documents come from a second public data set, AI4I 2020
// (Matzka 2020, `ai4i2020` in the shared data folder, CC BY 4.0): synthetic process values of
// a milling machine, not measurements of these excavators, which no public data set has. They
// stand in for the process series a real system would hold:
//
// - each excavator gets two measuring points, 1000 + 10 × its number (A is 1) + 1 for a
//   temperature gauge in K and + 2 for a torque gauge in NM, created 2001-07-01 and last
//   changed on the (shifted) day the equipment was; none is a counter;
// - each excavator takes the next 12 rows of the file in UDI order (A rows 1-12, B 13-24, ...):
//   row k gives one measurement document per point, the row's `Process temperature [K]` and
//   `Torque [Nm]`, read at 06:00 UTC on the day 11 - k days before yesterday (the data set has
//   no times), by user SENSOR, with the text `AI4I UDI <n>`; documents are numbered from
//   100001 in that order.

const fs = require('node:fs')
const path = require('node:path')
const cds = require('@sap/cds')

/** Parses the export's CSV: quoted fields, `""` and a backslash escaping the next character. */
function parseCsv(text) {
  const rows = []
  let row = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (quoted) {
      if (c === '\\' && i + 1 < text.length) field += text[++i]
      else if (c === '"' && text[i + 1] === '"') { field += '"'; i++ }
      else if (c === '"') quoted = false
      else field += c
    } else if (c === '\\' && i + 1 < text.length) field += text[++i]
    else if (c === '"') quoted = true
    else if (c === ',') { row.push(field); field = '' }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++
      row.push(field); rows.push(row); row = []; field = ''
    } else field += c
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row) }
  return rows
}

const plant = () => process.env.SAP_SEED_PLANT || 'AU01'

async function loadPlants() {
  await INSERT.into('s4.Plants').entries({
    Plant: plant(), PlantName: `Mine site ${plant()}`, CityName: 'Pilbara', Country: 'AU',
  })
}

function dateOnly(date) {
  return date.toISOString().slice(0, 10)
}

async function load({ dataDir, assets, maxOrders }) {
  if (!dataDir) throw new Error('MILLRACE_SHARED_DATA must name the shared data folder')
  const file = path.join(dataDir, 'excavator-mwo', 'excavators-cleaned.csv')
  // One record per physical line: a line whose escaping goes wrong (the export has a few)
  // stays on its own line instead of swallowing the ones after it.
  const [header, ...lines] = fs.readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .filter((line) => line.length > 0)
    .map((line) => parseCsv(line)[0])
  const column = (name) => header.indexOf(name)
  const rows = lines
    .map((cells, index) => ({ cells, number: index + 1 }))
    .filter(({ cells }) => cells.length === header.length && /^\d{4}-\d{2}-\d{2}$/.test(cells[0]))

  const newest = rows.reduce((max, { cells }) => (cells[0] > max ? cells[0] : max), '0000')
  const yesterday = (Math.floor(Date.now() / 86400000) - 1) * 86400000
  const shiftMs = yesterday - Date.parse(`${newest}T00:00:00Z`)
  const shifted = (day) => new Date(Date.parse(`${day}T00:00:00Z`) + shiftMs)

  const p = plant()
  await loadPlants()
  const equipmentOf = (asset) => String(10000000 + 1 + 'ABCDE'.indexOf(asset))
  const locations = new Map()
  for (const asset of assets) {
    locations.set(`${p}-EXC-${asset}`, {
      FunctionalLocation: `${p}-EXC-${asset}`, FunctionalLocationName: `Excavator ${asset} position`,
      FunctionalLocationCategory: 'M', MaintenancePlanningPlant: p, CreationDate: '2001-07-01',
      LastChangeDateTime: new Date(shiftMs + Date.parse('2001-07-01T00:00:00Z')).toISOString(),
    })
  }
  const selected = rows
    .filter(({ cells }) => assets.includes(cells[column('Asset')]))
    .sort((a, b) => (a.cells[0] < b.cells[0] ? 1 : a.cells[0] > b.cells[0] ? -1 : a.number - b.number))
    .slice(0, maxOrders)

  const orders = []
  const operations = []
  const notifications = []
  const childCode = new Map()
  for (const { cells, number } of selected) {
    const get = (name) => {
      const value = cells[column(name)]
      return value === undefined || value === 'NA' || value === '' ? null : value
    }
    const asset = get('Asset')
    const parent = `${p}-EXC-${asset}`
    let location = parent
    const text = get('FuncLocation')
    if (text) {
      const key = `${asset}|${text}`
      if (!childCode.has(key)) {
        const code = `${parent}-${String(childCode.size + 1).padStart(3, '0')}`
        childCode.set(key, code)
        locations.set(code, {
          FunctionalLocation: code, FunctionalLocationName: text.slice(0, 40),
          FunctionalLocationCategory: 'M', SuperiorFunctionalLocation: parent,
          MaintenancePlanningPlant: p, CreationDate: '2001-07-01',
          LastChangeDateTime: new Date(shiftMs + Date.parse('2001-07-01T00:00:00Z')).toISOString(),
        })
      }
      location = childCode.get(key)
    }
    const start = shifted(get('BscStartDate'))
    const day = dateOnly(start)
    const changed = new Date(start.getTime() + 18 * 3600000).toISOString()
    const order = String(4000000 + number)
    const done = Date.now() - start.getTime() > 14 * 86400000
    const type = (get('PMType') || 'PM01').slice(0, 4)
    const notification = type === 'PM01' ? String(10000000 + number) : null
    orders.push({
      MaintenanceOrder: order, MaintenanceOrderType: type,
      MaintenanceOrderDesc: (get('OriginalShorttext') || '').slice(0, 40), MaintPriority: '3',
      MaintOrdProcessPhaseCode: done ? '07' : '05', Equipment: equipmentOf(asset),
      FunctionalLocation: location, MaintenanceNotification: notification, MainWorkCenter: 'MECH',
      MaintenancePlanningPlant: p, MaintOrdBasicStartDate: day, MaintOrdBasicStartTime: '07:00:00',
      MaintOrdBasicEndDate: day, MaintOrdBasicEndTime: '17:00:00',
      MaintOrdBasicStartDateTime: `${day}T07:00:00.000Z`,
      ActualTotalCost: get('Cost') === null ? null : Number(get('Cost')), Currency: 'AUD',
      CreationDate: day, LastChangeDateTime: changed,
    })
    operations.push({
      MaintenanceOrder: order, MaintenanceOrderOperation: '0010', MaintenanceOrderSubOperation: '',
      OperationDescription: [get('MajorSystem'), get('Part')].filter(Boolean).join(' / ').slice(0, 40) || null,
      OperationWorkQuantityUnit: 'H', OperationIsConfirmed: done,
    })
    if (notification) {
      notifications.push({
        MaintenanceNotification: notification,
        NotificationText: (get('OriginalShorttext') || '').slice(0, 40), NotificationType: 'M2',
        MaintPriority: '3', NotifProcessingPhase: done ? '4' : '3', Equipment: equipmentOf(asset),
        FunctionalLocation: location, MaintenancePlanningPlant: p, MaintenanceOrder: order,
        NotificationCreationDate: day, NotificationCreationTime: '06:30:00',
        LastChangeDateTime: changed,
      })
    }
  }

  // The export names each excavator's make and model in its functional location texts.
  const models = { A: 'RH120C', B: 'RH120C', C: 'RH120E', D: 'RH120E', E: 'RH120E' }
  const serials = { C: 'SHD23', D: 'SHD24', E: 'SHD26' }
  const equipment = assets.map((asset) => ({
    Equipment: equipmentOf(asset), ValidityEndDate: '9999-12-31', ValidityStartDate: '2001-07-01',
    EquipmentName: `Hydraulic mining excavator ${asset}`, EquipmentCategory: 'M',
    TechnicalObjectType: 'EXCAVATOR', MaintenancePlanningPlant: p,
    AssetManufacturerName: 'O&K', ManufacturerPartTypeName: models[asset], SerialNumber: serials[asset] || null,
    FunctionalLocation: `${p}-EXC-${asset}`, ABCIndicator: 'A', CreationDate: '2001-07-01',
    LastChangeDateTime: new Date(shiftMs + Date.parse('2001-07-01T00:00:00Z')).toISOString(),
  }))

  // Replacement orders (PM02) with a cost buy their part: one purchase order each, from the
  // excavators' maker as the export names it (that the parts came from it is an assumption).
  const purchaseOrders = []
  const purchaseItems = []
  for (const order of orders) {
    if (order.MaintenanceOrderType !== 'PM02' || !(order.ActualTotalCost > 0)) continue
    const number = String(4500000000 + Number(order.MaintenanceOrder) - 4000000)
    purchaseOrders.push({
      PurchaseOrder: number, PurchaseOrderType: 'NB', CompanyCode: p, Supplier: '0000100001',
      DocumentCurrency: 'AUD', PurchaseOrderDate: order.CreationDate,
      PurchasingProcessingStatus: order.MaintOrdProcessPhaseCode === '07' ? '05' : '02',
      CreationDate: order.CreationDate, LastChangeDateTime: order.LastChangeDateTime,
    })
    const operation = operations.find((op) => op.MaintenanceOrder === order.MaintenanceOrder)
    purchaseItems.push({
      PurchaseOrder: number, PurchaseOrderItem: '00010',
      PurchaseOrderItemText: (operation && operation.OperationDescription) || order.MaintenanceOrderDesc,
      Plant: p, OrderQuantity: 1, PurchaseOrderQuantityUnit: 'EA',
      NetPriceAmount: order.ActualTotalCost, IsCompletelyDelivered: order.MaintOrdProcessPhaseCode === '07',
    })
  }
  await INSERT.into('s4.Suppliers').entries({
    Supplier: '0000100001', SupplierName: 'O&K', SupplierFullName: 'O&K (Orenstein & Koppel)',
    CreationDate: '2001-07-01',
  })
  if (purchaseOrders.length) await INSERT.into('s4.PurchaseOrders').entries(purchaseOrders)
  if (purchaseItems.length) await INSERT.into('s4.PurchaseOrderItems').entries(purchaseItems)

  await loadMeasurements({ dataDir, assets, plantChanged: equipment[0] && equipment[0].LastChangeDateTime })

  await INSERT.into('s4.FunctionalLocations').entries([...locations.values()])
  await INSERT.into('s4.Equipments').entries(equipment)
  if (orders.length) await INSERT.into('s4.MaintenanceOrders').entries(orders)
  if (operations.length) await INSERT.into('s4.MaintenanceOrderOperations').entries(operations)
  if (notifications.length) await INSERT.into('s4.MaintenanceNotifications').entries(notifications)
  cds.log('seed').info(`loaded ${orders.length} orders of excavators ${assets.join(',')} into plant ${p}`)
}

/** Readings per measuring point, taken from consecutive rows of AI4I 2020. */
const READINGS_PER_POINT = 12

/** Measuring points of the excavators and their readings from AI4I 2020 (see the top). */
async function loadMeasurements({ dataDir, assets, plantChanged }) {
  if (!assets.length) return
  const file = path.join(dataDir, 'ai4i2020', 'ai4i2020.csv')
  const [header, ...rows] = fs.readFileSync(file, 'utf8').split(/\r?\n/)
    .filter((line) => line.length > 0)
    .map((line) => line.split(','))
  const column = (name) => {
    const index = header.indexOf(name)
    if (index < 0) throw new Error(`${file} has no column ${name}`)
    return index
  }
  const udi = column('UDI')
  const gauges = [
    { offset: 1, description: 'Process temperature', unit: 'K', column: column('Process temperature [K]') },
    { offset: 2, description: 'Torque', unit: 'NM', column: column('Torque [Nm]') },
  ]
  const changedDay = (plantChanged || new Date().toISOString()).slice(0, 10)
  const yesterday = (Math.floor(Date.now() / 86400000) - 1) * 86400000
  const points = []
  const documents = []
  for (const asset of assets) {
    const index = 'ABCDE'.indexOf(asset)
    const equipment = String(10000000 + 1 + index)
    for (const gauge of gauges) {
      points.push({
        MeasuringPoint: String(1000 + 10 * (index + 1) + gauge.offset),
        MeasuringPointDescription: gauge.description, MeasuringPointCategory: 'M',
        MeasurementRangeUnit: gauge.unit, Equipment: equipment,
        FunctionalLocation: `${plant()}-EXC-${asset}`, CreationDate: '2001-07-01',
        LastChangeDate: changedDay,
      })
    }
    for (let k = 0; k < READINGS_PER_POINT; k++) {
      const row = rows[index * READINGS_PER_POINT + k]
      const day = dateOnly(new Date(yesterday - (READINGS_PER_POINT - 1 - k) * 86400000))
      for (const gauge of gauges) {
        documents.push({
          MeasuringPoint: String(1000 + 10 * (index + 1) + gauge.offset),
          MsmtRdngDate: day, MsmtRdngTime: '06:00:00',
          MeasurementReadingInEntryUoM: Number(row[gauge.column]),
          MeasurementReadingEntryUoM: gauge.unit, MsmtRdngByUser: 'SENSOR',
          MeasurementDocumentText: `AI4I UDI ${row[udi]}`,
        })
      }
    }
  }
  // Numbered in the order pushed: by excavator, reading day, then point.
  documents.forEach((document, n) => { document.MeasurementDocument = String(100001 + n) })
  await INSERT.into('s4.MeasuringPoints').entries(points)
  await INSERT.into('s4.MeasurementDocuments').entries(documents)
}

module.exports = { load, loadPlants, parseCsv }
