//! The projections' rules, checked by folding histories written through the
//! domain into `MemoryRows`: what the runner must reproduce in a store.

use std::collections::BTreeSet;

use shopstream_domain::DomainError;
use shopstream_domain::values::{OrderId, ProductId};
use shopstream_projections::catalogue::{
    INVENTORY_BY_SKU, PRODUCT_BY_ID, PRODUCT_SEARCH, PRODUCTS_BY_CATEGORY, PRODUCTS_BY_NAME,
    StockDoc,
};
use shopstream_projections::memory::MemoryRows;
use shopstream_projections::orders::ORDER_BY_ID;
use shopstream_projections::sales::SALES_BY_DAY;
use shopstream_projections::{DOC, RowKey};

use crate::harness::Stores;
use crate::reference::{fold, fold_delivering_each, history};
use crate::shop::Shop;

/// An empty shop on fresh stores.
fn new_shop() -> (Stores, Shop) {
    let side = Stores::new();
    let shop = Shop::new(side.events.clone(), 42);
    (side, shop)
}

#[tokio::test]
async fn every_event_delivered_twice_in_a_row_gives_the_rows_of_once() {
    let (side, mut shop) = new_shop();
    shop.open().await;
    shop.rounds(40).await;
    let history = history(side.events.as_ref()).await;

    let once = fold(&history);
    let twice = fold_delivering_each(&history, 2);
    assert!(twice == once, "a duplicate changed the rows");
    let written: BTreeSet<&str> = once.rows.keys().map(|k| k.table.as_str()).collect();
    let every: BTreeSet<&str> = shopstream_projections::all()
        .iter()
        .flat_map(|p| p.tables().iter().copied())
        .collect();
    assert_eq!(written, every, "the history reaches every table");
}

/// A product's stock as `inventory_by_sku` shows it.
async fn stock_shown(side: &Stores, shop: &Shop, product: ProductId) -> [Option<StockDoc>; 1] {
    let rows = side.reference().await;
    let decode = |key: RowKey, cell: &str| {
        rows.live(&key)
            .and_then(|r| r.cell(cell))
            .map(|v| v.decode().expect("stock levels decode"))
    };
    let sku = shop.sku_of(product);
    [decode(RowKey::single(INVENTORY_BY_SKU, sku.as_str()), DOC)]
}

fn levels(on_hand: u64, reserved: u64) -> [Option<StockDoc>; 1] {
    let doc = StockDoc {
        on_hand,
        reserved,
        available: on_hand - reserved,
    };
    [Some(doc)]
}

#[tokio::test]
async fn stock_levels_follow_receive_reserve_release_and_ship() {
    let (side, mut shop) = new_shop();
    let mug = shop.add_product("Blue Mug", "kitchen", 1_200).await;
    let ada = shop.add_customer().await;
    assert_eq!(stock_shown(&side, &shop, mug).await, [None]);

    shop.receive_stock(mug, 10).await;
    assert_eq!(stock_shown(&side, &shop, mug).await, levels(10, 0));
    let shipped = shop.place_order(ada, &[(mug, 3)]).await.expect("in stock");
    assert_eq!(stock_shown(&side, &shop, mug).await, levels(10, 3));
    let cancelled = shop.place_order(ada, &[(mug, 2)]).await.expect("in stock");
    assert_eq!(stock_shown(&side, &shop, mug).await, levels(10, 5));
    shop.cancel(cancelled).await;
    assert_eq!(
        stock_shown(&side, &shop, mug).await,
        levels(10, 3),
        "released"
    );
    shop.pay(shipped).await;
    shop.ship(shipped).await;
    assert_eq!(
        stock_shown(&side, &shop, mug).await,
        levels(7, 0),
        "shipped"
    );
    let refused = shop.place_order(ada, &[(mug, 8)]).await;
    assert!(
        matches!(refused, Err(DomainError::InsufficientStock { .. })),
        "{refused:?}"
    );
    assert_eq!(
        stock_shown(&side, &shop, mug).await,
        levels(7, 0),
        "a refusal reserves nothing"
    );
    shop.receive_stock(mug, 5).await;
    assert_eq!(stock_shown(&side, &shop, mug).await, levels(12, 0));
}

/// The list rows (by category, by name, by search token) showing a product.
fn listed(rows: &MemoryRows, product: ProductId) -> BTreeSet<RowKey> {
    let id = product.to_string();
    rows.rows
        .iter()
        .filter(|(k, r)| {
            [PRODUCTS_BY_CATEGORY, PRODUCTS_BY_NAME, PRODUCT_SEARCH].contains(&k.table.as_str())
                && k.clustering.ends_with(&id)
                && r.is_live()
        })
        .map(|(k, _)| k.clone())
        .collect()
}

#[tokio::test]
async fn discontinued_products_leave_every_list_and_keep_their_page() {
    let (side, mut shop) = new_shop();
    let mug = shop
        .add_product("Blue Stoneware Mug", "kitchen", 1_200)
        .await;
    let kettle = shop.add_product("Copper Kettle", "kitchen", 4_500).await;
    let before = side.reference().await;
    let mug_lists = listed(&before, mug);
    let partitions: BTreeSet<(&str, &str)> = mug_lists
        .iter()
        .map(|k| (k.table.as_str(), k.partition.as_str()))
        .collect();
    for list in [
        (PRODUCTS_BY_CATEGORY, "kitchen"),
        (PRODUCTS_BY_NAME, "all"),
        (PRODUCT_SEARCH, "stoneware"),
        (PRODUCT_SEARCH, "gift"),
    ] {
        assert!(partitions.contains(&list), "listed in {list:?} first");
    }

    shop.discontinue(mug).await;
    let after = side.reference().await;
    assert_eq!(listed(&after, mug), BTreeSet::new(), "gone from every list");
    for key in &mug_lists {
        assert!(
            after.rows[key].deleted.is_some(),
            "{key:?} holds a tombstone"
        );
    }
    assert_eq!(
        listed(&after, kettle),
        listed(&before, kettle),
        "the others stay listed"
    );
    let page = after
        .live(&RowKey::single(PRODUCT_BY_ID, mug.to_string()))
        .and_then(|r| r.value(DOC))
        .expect("the product's page stays");
    assert_eq!(page["status"], "discontinued");
    assert_eq!(page["name"], "Blue Stoneware Mug");
}

/// The orders with a live row in `sales_by_day`.
fn on_sale_days(rows: &MemoryRows) -> BTreeSet<String> {
    rows.rows
        .iter()
        .filter(|(k, r)| k.table == SALES_BY_DAY && r.is_live())
        .map(|(k, _)| k.clustering.clone())
        .collect()
}

fn order_status(rows: &MemoryRows, order: OrderId) -> String {
    let doc = rows
        .live(&RowKey::single(ORDER_BY_ID, order.to_string()))
        .and_then(|r| r.value(DOC))
        .expect("the order's page");
    doc["status"].as_str().expect("a status").to_string()
}

#[tokio::test]
async fn cancelled_orders_leave_sales_by_day() {
    let (side, mut shop) = new_shop();
    let mug = shop.add_product("Blue Mug", "kitchen", 1_200).await;
    shop.receive_stock(mug, 20).await;
    let ada = shop.add_customer().await;
    let mut place = async |quantity| shop.place_order(ada, &[(mug, quantity)]).await;
    let kept = place(1).await.expect("in stock");
    let unpaid = place(2).await.expect("in stock");
    let refunded = place(3).await.expect("in stock");
    shop.pay(kept).await;
    shop.pay(refunded).await;
    let before = side.reference().await;
    let all: BTreeSet<String> = [kept, unpaid, refunded].map(|o| o.to_string()).into();
    assert_eq!(on_sale_days(&before), all, "every placed order is a sale");

    shop.cancel(unpaid).await;
    shop.cancel(refunded).await;
    let after = side.reference().await;
    assert_eq!(on_sale_days(&after), BTreeSet::from([kept.to_string()]));
    for order in [unpaid, refunded] {
        assert_eq!(
            order_status(&after, order),
            "cancelled",
            "orders keep their page"
        );
    }
    assert_eq!(order_status(&after, kept), "paid");
}
