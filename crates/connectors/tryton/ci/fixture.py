"""Builds the Tryton template databases the connector's tests copy, through Tryton's own API.

    fixture.py --dir DIR --kind {empty,seeded} [--data SHARED_DATA]

Creates DIR/<kind>.sqlite once (a later call finds it and returns at once): `trytond-admin`
activates the modules the connector reads, then proteus, Tryton's scripting library, sets up a
company, its warehouse and a `millrace` user, and for `seeded` loads public data from
shared/data: GeoNet's equipment register (products, serial-numbered lots, suppliers, purchases,
purchase requests, stock), the MaintNorm work order texts (project tasks), and AI4I 2020 machining runs
(production orders and their quality inspections). Concurrent callers wait on a lock, so one
builds and the others copy. Prints the template's path.
"""

import argparse
import csv
import datetime
import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

MODULES = [
    "company", "product", "stock", "stock_lot", "purchase", "purchase_request",
    "production", "project", "quality",
]
ADMIN_PASSWORD = "admin-password"
USER_LOGIN = "millrace"
USER_PASSWORD = "millrace-password"
# Bump when the data or the setup below changes, so that old templates are rebuilt.
VERSION = "5"


def write_config(directory, name):
    config = directory / f"{name}.conf"
    config.write_text(f"[database]\nuri = sqlite://\npath = {directory}\n")
    return config


def create_database(venv_bin, directory, name):
    config = write_config(directory, name)
    (directory / f"{name}.sqlite").touch()
    password_file = directory / f"{name}.pass"
    password_file.write_text(ADMIN_PASSWORD + "\n")
    env = dict(os.environ, TRYTONPASSFILE=str(password_file))
    subprocess.run(
        [str(venv_bin / "trytond-admin"), "-c", str(config), "-d", name, "--all",
         "--email", "admin@example.com", "-u", *MODULES, "--activate-dependencies"],
        check=True, env=env, stdout=subprocess.DEVNULL)
    password_file.unlink()
    return config


def set_up_company(config_module, Model):
    Currency = Model.get("currency.currency")
    Party = Model.get("party.party")
    Company = Model.get("company.company")
    User = Model.get("res.user")
    Group = Model.get("res.group")
    Location = Model.get("stock.location")

    currency = Currency(name="New Zealand Dollar", code="NZD", symbol="$", digits=2,
                        rounding=Decimal("0.01"))
    currency.save()
    party = Party(name="GeoNet Field Operations")
    party.save()
    company = Company(party=party, currency=currency)
    company.save()
    admin = User(config_module.get_config().user)
    admin.companies.append(company)
    admin.company = company
    admin.save()

    warehouse, = Location.find([("type", "=", "warehouse")])
    warehouse.name = "Avalon Depot"
    warehouse.code = "AVL"
    warehouse.save()

    user = User(name="Millrace sync", login=USER_LOGIN, password=USER_PASSWORD)
    user.companies.append(Company(company.id))
    user.company = Company(company.id)
    for group in Group.find([]):
        user.groups.append(group)
    user.save()


def rows(path, limit):
    with open(path, newline="", encoding="utf-8") as handle:
        for index, row in enumerate(csv.DictReader(handle)):
            if index >= limit:
                return
            yield row


def seed(config_module, Model, data, company, warehouse):
    Party = Model.get("party.party")
    Uom = Model.get("product.uom")
    Template = Model.get("product.template")
    Lot = Model.get("stock.lot")
    Location = Model.get("stock.location")
    Move = Model.get("stock.move")
    Purchase = Model.get("purchase.purchase")
    Work = Model.get("project.work")
    Production = Model.get("production")
    Control = Model.get("quality.control")
    Inspection = Model.get("quality.inspection")

    unit, = Uom.find([("name", "=", "Unit")])
    supplier_location, = Location.find([("code", "=", "SUP")])
    storage, = Location.find([("code", "=", "STO")])
    production_location, = Location.find([("code", "=", "PROD")])

    # GeoNet's dataloggers: one product per model, one lot per serial, the makes as suppliers.
    register = data / "geonet-equipment-register" / "assets" / "dataloggers.csv"
    suppliers, products, lots = {}, {}, []
    for row in rows(register, 60):
        make, model, serial = row["Make"].strip(), row["Model"].strip(), row["Serial"].strip()
        if make not in suppliers:
            supplier = Party(name=make)
            supplier.save()
            suppliers[make] = supplier
        if model not in products:
            template = Template(name=model, type="goods", default_uom=unit,
                                purchasable=True, purchase_uom=unit, producible=True,
                                list_price=Decimal("0"))
            template.save()
            product, = template.products
            product.description = f"Datalogger by {make}"
            product.suffix_code = model.replace(" ", "-").upper()[:20]
            product.cost_price = Decimal("1850.00")
            product.save()
            products[model] = (product, suppliers[make])
        lot = Lot(number=serial, product=products[model][0])
        lots.append(lot)
    Lot.save(lots)

    # Stock received from the suppliers into the depot's storage zone.
    moves = []
    for index, (product, _) in enumerate(products.values()):
        moves.append(Move(product=product, quantity=float(2 + index % 5), unit=unit,
                          from_location=supplier_location, to_location=storage,
                          unit_price=Decimal("1850.00"), currency=company.currency,
                          company=company))
    Move.save(moves)
    Move.click(moves, "do")

    # Purchase orders for spares, half of them quoted.
    for index, (product, supplier) in enumerate(list(products.values())[:8]):
        purchase = Purchase(party=supplier, warehouse=warehouse,
                            description=f"Spare {product.rec_name}",
                            purchase_date=datetime.date(2026, 1, 1 + index))
        line = purchase.lines.new()
        line.product = product
        line.quantity = float(1 + index)
        line.unit_price = Decimal("1799.50")
        line = purchase.lines.new()
        line.type = "comment"
        line.description = "Ship with calibration certificate"
        purchase.save()
        if index % 2 == 0:
            purchase.click("quote")

    # Purchase requests for more spares. Users may not create them: Tryton's supply run does,
    # as the root user inside the server; so does this, through the same ORM.
    from trytond.pool import Pool
    from trytond.transaction import Transaction
    database = config_module.get_config().database_name
    with Transaction().start(database, 0, context={"company": company.id}):
        RequestModel = Pool().get("purchase.request")
        RequestModel.create([{
            "product": product.id, "party": supplier.id, "quantity": float(3 + index),
            "unit": unit.id, "warehouse": warehouse.id, "company": company.id,
            "supply_date": datetime.date(2026, 3, 1 + index),
        } for index, (product, supplier) in enumerate(list(products.values())[:4])])

    # MaintNorm's maintenance texts as the tasks of a fleet maintenance project.
    texts = data / "maintnorm-mwo-text" / "maintnorm_texts.csv"
    project = Work(name="Excavator fleet maintenance", type="project", company=company)
    project.save()
    for row in rows(texts, 40):
        Work(name=row["raw_text"].strip()[:120], type="task", company=company,
             parent=project).save()

    # AI4I 2020's machining runs as production orders of the three quality variants, each
    # run inspected on its tool wear (a worn tool, over 200 minutes, fails the inspection).
    machined = {}
    for variant in ("L", "M", "H"):
        template = Template(name=f"Machined part, quality {variant}", type="goods",
                            default_uom=unit, producible=True, list_price=Decimal("0"))
        template.save()
        machined[variant] = template.products[0]
    Point = Model.get("quality.control.point")
    control = Control(name="Machining run check", frequency=1)
    point = control.points.new()
    point.name = "tool_wear"
    point.string = "Tool wear [min]"
    point.type_ = "float"
    point.tolerance_upper = 200.0
    control.save()
    runs = data / "ai4i2020" / "ai4i2020.csv"
    for index, row in enumerate(list(rows(runs, 10000))[::333]):
        production = Production(product=machined[row["Type"]], quantity=1.0, unit=unit,
                                warehouse=warehouse, location=production_location,
                                reference=row["Product ID"],
                                planned_date=datetime.date(2026, 2, 1)
                                + datetime.timedelta(days=index))
        production.save()
        if index % 3 == 0:
            production.click("wait")
        inspection = Inspection(control=control, origin=production, company=company,
                                points={"tool_wear": float(row["Tool wear [min]"])})
        inspection.save()
        if index % 3 != 2:
            inspection.click("process")
    del Point


def build_locked(args):
    directory = Path(args.dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Under the lock nobody builds: what is not a current template is left over from an
        # older version or an interrupted build.
        current = {f"{kind}-v{VERSION}.sqlite" for kind in ("empty", "seeded")}
        for path in directory.iterdir():
            if path.name != ".lock" and path.name not in current:
                path.unlink()
        print(template(directory, args.kind, args.data))


def template(directory, kind, data):
    """Returns the template of `kind`, building it (and the empty one it starts from) first
    when missing. The caller holds the lock."""
    target = directory / f"{kind}-v{VERSION}.sqlite"
    if target.exists():
        return target
    source = template(directory, "empty", None) if kind != "empty" else None
    name = f"build-{kind}-{os.getpid()}"
    try:
        build(directory, kind, data, name, source, target)
    finally:
        for leftover in directory.glob(f"{name}.*"):
            leftover.unlink()
    return target


def build(directory, kind, data, name, source, target):
    database = directory / f"{name}.sqlite"
    if source is None:
        create_database(Path(sys.executable).parent, directory, name)
    else:
        shutil.copyfile(source, database)
        write_config(directory, name)

    # Proteus keeps its database connection open: populate in a child process, so that the
    # database is closed and whole in one file before it becomes the template.
    subprocess.run([sys.executable, __file__, "--populate", kind, "--dir", str(directory),
                    "--name", name] + (["--data", str(data)] if data else []), check=True)
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.close()
    os.replace(database, target)


def populate(directory, kind, name, data):
    from proteus import Model
    from proteus import config as config_module
    config = config_module.set_trytond(
        name, user="admin", config_file=str(directory / f"{name}.conf"))
    # Seeding answers yes to Tryton's confirmations (e.g. stock moves without an origin).
    config.skip_warning = True
    if kind == "empty":
        set_up_company(config_module, Model)
        return
    Company = Model.get("company.company")
    Location = Model.get("stock.location")
    company, = Company.find([])
    warehouse, = Location.find([("type", "=", "warehouse")])
    seed(config_module, Model, Path(data), company, warehouse)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--kind", choices=["empty", "seeded"])
    parser.add_argument("--data")
    parser.add_argument("--populate", choices=["empty", "seeded"], help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.populate:
        populate(Path(args.dir), args.populate, args.name, args.data)
        return
    if not args.kind:
        parser.error("--kind is required")
    if args.kind == "seeded" and not args.data:
        parser.error("--data is required for the seeded template")
    build_locked(args)


if __name__ == "__main__":
    main()
