"""The runs around the tracker node (not the node itself, which is `siam_tracker_ros.ros`): the frame player
(`player`, `player_node`, `fastdds`), the child processes and domain ids (`launcher`), the rclpy client and recorder
(`client`), a session of node + player + client (`session`), its report (`report`), and the commands built on them:
`demo`, `latency`, `load`. Only imported by the `siam-tracker` command, the `frame_player` executable and the tests.
"""
