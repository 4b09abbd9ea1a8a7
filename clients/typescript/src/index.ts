// Everything a program needs: the desk helper and the generated messages and services.
export * from "./client.js";
export * from "./gen/servicedesk/v1/types_pb.js";
export * from "./gen/servicedesk/v1/desk_pb.js";
export * from "./gen/servicedesk/v1/escalation_pb.js";
export * from "./gen/servicedesk/v1/admin_pb.js";
export * from "./gen/servicedesk/v1/agent_pb.js";
export * from "./gen/google/rpc/error_details_pb.js";
