// Helpers to build axis-aligned bounding boxes (local stand-in for upstream's header of the same name).
#ifndef VISION_MSGS__CREATE_AABB_HPP_
#define VISION_MSGS__CREATE_AABB_HPP_

#include "vision_msgs/msg/bounding_box2_d.hpp"
#include "vision_msgs/msg/bounding_box3_d.hpp"

namespace vision_msgs
{

// Box from its top-left corner (left, top) and its width and height, in pixels.
inline msg::BoundingBox2D createAABB2D(double left, double top, double width, double height)
{
  msg::BoundingBox2D box;
  box.center.position.x = left + width / 2.0;
  box.center.position.y = top + height / 2.0;
  box.center.theta = 0.0;
  box.size_x = width;
  box.size_y = height;
  return box;
}

// Box from its minimum corner and its extent along x, y and z, in meters; identity orientation.
inline msg::BoundingBox3D createAABB3D(
  double min_x, double min_y, double min_z, double size_x, double size_y, double size_z)
{
  msg::BoundingBox3D box;
  box.center.position.x = min_x + size_x / 2.0;
  box.center.position.y = min_y + size_y / 2.0;
  box.center.position.z = min_z + size_z / 2.0;
  box.center.orientation.w = 1.0;
  box.size.x = size_x;
  box.size.y = size_y;
  box.size.z = size_z;
  return box;
}

}  // namespace vision_msgs

#endif  // VISION_MSGS__CREATE_AABB_HPP_
