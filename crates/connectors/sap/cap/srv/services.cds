// The services, under the names of S/4HANA's published APIs. OData V4 is served at
// /odata/v4/<SERVICE>/ and, through the V2 adapter, V2 at /sap/opu/odata/sap/<SERVICE>/ as
// SAP Gateway serves it. A small paging limit makes the server page with $skiptoken.
using s4 from '../db/schema';

@path: 'API_PLANT_SRV'
@requires: 'authenticated-user'
service API_PLANT_SRV {
  @cds.query.limit: { default: 10, max: 10 }
  entity A_Plant as projection on s4.Plants;
}

@path: 'API_FUNCTIONALLOCATION'
@requires: 'authenticated-user'
service API_FUNCTIONALLOCATION {
  @cds.query.limit: { default: 20, max: 20 }
  entity FunctionalLocation as projection on s4.FunctionalLocations;
}

@path: 'API_EQUIPMENT'
@requires: 'authenticated-user'
service API_EQUIPMENT {
  @cds.query.limit: { default: 20, max: 20 }
  entity Equipment as projection on s4.Equipments;
}

@path: 'API_MAINTNOTIFICATION'
@requires: 'authenticated-user'
service API_MAINTNOTIFICATION {
  @cds.query.limit: { default: 20, max: 20 }
  entity MaintenanceNotification as projection on s4.MaintenanceNotifications;
}

@path: 'API_MAINTENANCEORDER'
@requires: 'authenticated-user'
service API_MAINTENANCEORDER {
  @cds.query.limit: { default: 20, max: 20 }
  entity MaintenanceOrder as projection on s4.MaintenanceOrders {
    *,
    to_MaintenanceOrderOperation : redirected to MaintenanceOrderOperation
  };
  @cds.query.limit: { default: 100, max: 100 }
  entity MaintenanceOrderOperation as projection on s4.MaintenanceOrderOperations;
}

@path: 'API_BUSINESS_PARTNER'
@requires: 'authenticated-user'
service API_BUSINESS_PARTNER {
  @cds.query.limit: { default: 20, max: 20 }
  entity A_Supplier as projection on s4.Suppliers;
}

@path: 'API_PURCHASEORDER_PROCESS_SRV'
@requires: 'authenticated-user'
service API_PURCHASEORDER_PROCESS_SRV {
  @cds.query.limit: { default: 20, max: 20 }
  entity A_PurchaseOrder as projection on s4.PurchaseOrders {
    *,
    to_PurchaseOrderItem : redirected to A_PurchaseOrderItem
  };
  @cds.query.limit: { default: 100, max: 100 }
  entity A_PurchaseOrderItem as projection on s4.PurchaseOrderItems;
}

@path: 'API_MEASURINGPOINT'
@requires: 'authenticated-user'
service API_MEASURINGPOINT {
  @cds.query.limit: { default: 20, max: 20 }
  entity MeasuringPoint as projection on s4.MeasuringPoints;
}

@path: 'API_MEASUREMENTDOCUMENT'
@requires: 'authenticated-user'
service API_MEASUREMENTDOCUMENT {
  @cds.query.limit: { default: 50, max: 50 }
  entity MeasurementDocument as projection on s4.MeasurementDocuments;
}
