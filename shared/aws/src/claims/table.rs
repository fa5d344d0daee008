//! The claims table, made as the SAM template makes it, for tests and local development.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use nodewright_core::ports::PortResult;
use tracing::info;

use super::item::INSTANCE_ID;
use super::{INSTANCE_INDEX, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE, build_error};
use crate::errors;

/// Creates the claims table as the SAM template does (see the module docs), with TTL on.
pub async fn create_table(client: &Client, name: &str) -> PortResult<()> {
    let key = |attribute: &str, key_type: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attribute)
            .key_type(key_type)
            .build()
            .map_err(build_error)
    };
    let attribute = |attribute: &str| {
        AttributeDefinition::builder()
            .attribute_name(attribute)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(build_error)
    };
    let index = GlobalSecondaryIndex::builder()
        .index_name(INSTANCE_INDEX)
        .key_schema(key(INSTANCE_ID, KeyType::Hash)?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(build_error)?;
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute(PARTITION_KEY)?)
        .attribute_definitions(attribute(SORT_KEY)?)
        .attribute_definitions(attribute(INSTANCE_ID)?)
        .key_schema(key(PARTITION_KEY, KeyType::Hash)?)
        .key_schema(key(SORT_KEY, KeyType::Range)?)
        .global_secondary_indexes(index)
        .send()
        .await
        .map_err(|e| errors::from_sdk("dynamodb CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(build_error)?,
        )
        .send()
        .await
        .map_err(|e| errors::from_sdk("dynamodb UpdateTimeToLive", e))?;
    info!(table = name, "claims table created");
    Ok(())
}
