import pytest

from paymesh.adapters.sqlite import SqliteStore
from tests.contract.bus_store_contract import BusStoreContract
from tests.contract.store_contract import StoreContract


@pytest.fixture
async def store(tmp_path):
    s = SqliteStore(tmp_path / "paymesh.db")
    await s.open()
    yield s
    await s.close()


class TestSqliteStore(StoreContract):
    pass


async def test_a_reopened_file_keeps_everything(tmp_path):
    from tests.contract.store_contract import payment, save

    first = SqliteStore(tmp_path / "p.db")
    await first.open()
    await save(first, payment("pay_1"))
    await first.close()
    second = SqliteStore(tmp_path / "p.db")
    await second.open()
    assert (await second.get_payment("pay_1")).amount == 2000
    await second.close()


class TestSqliteBusStore(BusStoreContract):
    pass
