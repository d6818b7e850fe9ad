//! dashboard-api
