// Tables shaped like the entities of S/4HANA's published plant maintenance APIs: the same
// entity and property names and the same EDM types, so that the services below answer as
// API_MAINTENANCEORDER, API_MAINTNOTIFICATION, API_EQUIPMENT, API_FUNCTIONALLOCATION,
// API_PLANT_SRV, API_BUSINESS_PARTNER, API_PURCHASEORDER_PROCESS_SRV, API_MEASURINGPOINT and
// API_MEASUREMENTDOCUMENT do. Only the properties the connector reads, plus a few more, are modelled.
namespace s4;

entity Plants {
  key Plant               : String(4);
      PlantName           : String(30);
      CityName            : String(25);
      Country             : String(3);
}

entity FunctionalLocations {
  key FunctionalLocation           : String(40);
      FunctionalLocationName       : String(40);
      FunctionalLocationCategory   : String(1);
      SuperiorFunctionalLocation   : String(40);
      MaintenancePlanningPlant     : String(4);
      FuncnlLocIsMarkedForDeletion : Boolean default false;
      FuncnlLocIsDeactivated       : Boolean default false;
      CreationDate                 : Date;
      LastChangeDateTime           : Timestamp;
}

entity Equipments {
  key Equipment                    : String(18);
  // Equipment master data is time-dependent: each validity period is its own row.
  key ValidityEndDate              : Date default '9999-12-31';
      ValidityStartDate            : Date;
      EquipmentName                : String(40);
      EquipmentCategory            : String(1);
      TechnicalObjectType          : String(10);
      AssetManufacturerName        : String(30);
      ManufacturerPartTypeName     : String(20);
      SerialNumber                 : String(18);
      MaintenancePlanningPlant     : String(4);
      FunctionalLocation           : String(40);
      SuperordinateEquipment       : String(18);
      ABCIndicator                 : String(1);
      OperationStartDate           : Date;
      EquipmentIsMarkedForDeletion : Boolean default false;
      EquipmentIsInactive          : Boolean default false;
      CreationDate                 : Date;
      LastChangeDateTime           : Timestamp;
}

entity MaintenanceNotifications {
  key MaintenanceNotification  : String(12);
      NotificationText         : String(40);
      NotificationType         : String(2);
      MaintPriority            : String(1);
      NotifProcessingPhase     : String(1);
      Equipment                : String(18);
      FunctionalLocation       : String(40);
      MaintenancePlanningPlant : String(4);
      MaintenanceOrder         : String(12);
      ReportedByUser           : String(12);
      NotificationCreationDate : Date;
      NotificationCreationTime : Time;
      IsDeleted                : Boolean default false;
      LastChangeDateTime       : Timestamp;
}

entity MaintenanceOrders {
  key MaintenanceOrder             : String(12);
      MaintenanceOrderType         : String(4);
      MaintenanceOrderDesc         : String(40);
      MaintPriority                : String(1);
      MaintenanceActivityType      : String(3);
      MaintOrdProcessPhaseCode     : String(2);
      Equipment                    : String(18);
      FunctionalLocation           : String(40);
      MaintenanceNotification      : String(12);
      MainWorkCenter               : String(8);
      MaintenancePlanningPlant     : String(4);
      MaintOrdBasicStartDate       : Date;
      MaintOrdBasicStartTime       : Time;
      MaintOrdBasicEndDate         : Date;
      MaintOrdBasicEndTime         : Time;
      MaintOrdBasicStartDateTime   : Timestamp;
      EstimatedTotalCost           : Decimal(13, 2);
      ActualTotalCost              : Decimal(13, 2);
      Currency                     : String(5);
      MaintOrderIsMarkedForDeletion : Boolean default false;
      CreationDate                 : Date;
      LastChangeDateTime           : Timestamp;
      to_MaintenanceOrderOperation : Composition of many MaintenanceOrderOperations
                                       on to_MaintenanceOrderOperation.MaintenanceOrder = MaintenanceOrder;
}

entity MaintenanceOrderOperations {
  key MaintenanceOrder             : String(12);
  key MaintenanceOrderOperation    : String(4);
  key MaintenanceOrderSubOperation : String(4) default '';
      OperationDescription         : String(40);
      OperationPlannedWorkQuantity : Decimal(13, 3);
      OperationActualWorkQuantity  : Decimal(13, 3);
      OperationWorkQuantityUnit    : String(3);
      OperationIsConfirmed         : Boolean default false;
}

entity Suppliers {
  key Supplier            : String(10);
      SupplierName        : String(80);
      SupplierFullName    : String(220);
      Country             : String(3);
      CityName            : String(35);
      PurchasingIsBlocked : Boolean default false;
      DeletionIndicator   : Boolean default false;
      CreationDate        : Date;
}

entity PurchaseOrders {
  key PurchaseOrder                  : String(10);
      PurchaseOrderType              : String(4);
      CompanyCode                    : String(4);
      Supplier                       : String(10);
      DocumentCurrency               : String(5);
      PurchaseOrderDate              : Date;
      PurchasingProcessingStatus     : String(2);
      PurchasingDocumentDeletionCode : String(1) default '';
      CreationDate                   : Date;
      LastChangeDateTime             : Timestamp;
      to_PurchaseOrderItem           : Composition of many PurchaseOrderItems
                                         on to_PurchaseOrderItem.PurchaseOrder = PurchaseOrder;
}

entity PurchaseOrderItems {
  key PurchaseOrder                  : String(10);
  key PurchaseOrderItem              : String(5);
      PurchaseOrderItemText          : String(40);
      Material                       : String(40);
      Plant                          : String(4);
      OrderQuantity                  : Decimal(13, 3);
      PurchaseOrderQuantityUnit      : String(3);
      NetPriceAmount                 : Decimal(11, 2);
      NetPriceQuantity               : Decimal(5, 0) default 1;
      IsCompletelyDelivered          : Boolean default false;
      PurchasingDocumentDeletionCode : String(1) default '';
}

// Measuring points (API_MEASURINGPOINT) carry a change date, not a change time.
entity MeasuringPoints {
  key MeasuringPoint                : String(12);
      MeasuringPointDescription     : String(40);
      MeasuringPointCategory        : String(1);
      MeasuringPointIsCounter       : Boolean default false;
      MeasurementRangeUnit          : String(3);
      Equipment                     : String(18);
      FunctionalLocation            : String(40);
      MeasuringPointPositionNumber  : String(20);
      MeasuringPointIsInactive      : Boolean default false;
      MultiLevelDeletionLogicStatus : String(1) default '';
      CreationDate                  : Date;
      LastChangeDate                : Date;
}

// Measurement documents (API_MEASUREMENTDOCUMENT) are posted, then at most reversed; they
// carry their reading date and time, and no change time.
entity MeasurementDocuments {
  key MeasurementDocument          : String(20);
      MeasuringPoint               : String(12);
      MsmtRdngDate                 : Date;
      MsmtRdngTime                 : Time;
      MeasurementReadingInEntryUoM : Double;
      MeasurementReadingEntryUoM   : String(3);
      MeasurementCounterReading    : Double;
      MsmtValuationCode            : String(4);
      MeasurementDocumentText      : String(40);
      MsmtRdngByUser               : String(12);
      MsmtRdngIsReversed           : Boolean default false;
}
